// Command-line generators of the amd64 assembly in package cpu, one
// program per directory, each writing one .s file and its Go declarations
// with github.com/mmcloughlin/avo. They live in a module of their own so
// that avo is not a dependency of quantkit. Run them with `make asm`;
// `make asm-check` (in CI) fails when the committed files differ from
// what they generate.
package gen
