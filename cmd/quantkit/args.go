package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// commandLine is a command line resolved against the app: the command it
// names and its arguments with every flag moved ahead of the positional
// arguments. urfave/cli stops parsing flags at the first positional
// argument, but `quantkit quantize IN -o OUT` is the natural order; this is
// the one place that handles flags after arguments, for app.Run and for
// the hand-over to the CUDA build alike.
type commandLine struct {
	Cmd  *cli.Command // the command named, nil when none is
	Args []string     // the reordered command line, program name first
	// Flags are the flags given to Cmd, by the name the user typed, with
	// their values ("true" for a bool flag without one); the last wins.
	Flags map[string]string
}

// keepOrder names the commands whose positional arguments are themselves a
// command line (profile runs COMMAND [ARG...]): their flags end at the
// first positional argument, as urfave/cli does it.
var keepOrder = []string{"profile"}

// deprecatedJSONFile names the commands whose --json took a FILE before it
// became the bool of every command (--json-out FILE now writes the file).
var deprecatedJSONFile = []string{"quantize", "demo"}

// resolve reorders args (os.Args-like) for app. warn (not nil) receives
// one line per deprecated spelling it rewrote. Unknown flags are moved like the others
// and left to urfave/cli to refuse.
func resolve(app *cli.App, args []string, warn io.Writer) commandLine {
	cl := commandLine{Args: args, Flags: map[string]string{}}
	if len(args) < 2 {
		return cl
	}
	// The command path: leading words naming commands and subcommands.
	cmds, n := app.Commands, 1
	for ; n < len(args); n++ {
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(args[n]) {
				next = c
			}
		}
		if next == nil {
			break
		}
		cl.Cmd, cmds = next, next.Subcommands
	}
	if cl.Cmd == nil {
		return cl
	}
	var flags, positional []string
	rest := args[n:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			positional = append(positional, rest[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			if slices.Contains(keepOrder, cl.Cmd.Name) {
				positional = append(positional, rest[i:]...)
				break
			}
			positional = append(positional, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := findFlag(cl.Cmd.Flags, name)
		if !hasValue && takesValue(f) && i+1 < len(rest) {
			i++
			value, hasValue = rest[i], true
			a += "=" + value
		}
		if name == "json" && slices.Contains(deprecatedJSONFile, cl.Cmd.Name) && findFlag(cl.Cmd.Flags, "json-out") != nil {
			if !hasValue && i+1 < len(rest) && (rest[i+1] == "-" || strings.HasSuffix(strings.ToLower(rest[i+1]), ".json")) {
				i++
				value, hasValue = rest[i], true
			}
			switch {
			case value == "-":
				fmt.Fprintf(warn, "quantkit %s: --json - is deprecated and will be removed in the next release: use --json\n", cl.Cmd.Name)
				value, a = "true", "--json"
			case hasValue && value != "true" && value != "false":
				fmt.Fprintf(warn, "quantkit %s: --json FILE is deprecated and will be removed in the next release: use --json-out %s (--json alone prints the report)\n", cl.Cmd.Name, value)
				name, a = "json-out", "--json-out="+value
			}
		}
		if !hasValue && f != nil {
			value = "true"
		}
		flags = append(flags, a)
		cl.Flags[name] = value
	}
	out := slices.Clone(args[:n])
	out = append(out, flags...)
	if slices.ContainsFunc(positional, func(s string) bool { return strings.HasPrefix(s, "-") && s != "-" }) {
		out = append(out, "--")
	}
	cl.Args = append(out, positional...)
	return cl
}

// findFlag is the flag of flags called name, or nil.
func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

// takesValue reports whether f needs a value ("-o OUT"); bool flags do not
// (they take one only as --flag=false). An unknown flag is taken to have
// none.
func takesValue(f cli.Flag) bool {
	if f == nil {
		return false
	}
	if _, ok := f.(*cli.BoolFlag); ok {
		return false
	}
	if dg, ok := f.(cli.DocGenerationFlag); ok {
		return dg.TakesValue()
	}
	return true
}

// device is the --device value given to the command, if any.
func (cl commandLine) device() (string, bool) {
	v, ok := cl.Flags["device"]
	return v, ok
}

// usesDevice reports whether the command has the --device flag, that is,
// computes on a device.
func (cl commandLine) usesDevice() bool {
	return cl.Cmd != nil && slices.Contains(cl.Cmd.Flags, cli.Flag(deviceFlag))
}
