package gpu

// This test has no build tag: the default build (CI without a GPU) checks
// that the launch constants the kernels and this package are built with
// are those of the one table, cuda/launch.

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/quantkit/quantkit/cuda/launch"
)

// constants_gen.go and ../cuda/launch.cuh are what the table generates.
func TestLaunchConstants(t *testing.T) {
	for _, f := range []struct {
		path string
		want []byte
	}{
		{filepath.Join("..", launch.CUHPath), launch.CUH()},
		{filepath.Join("..", launch.GoPath), launch.Go()},
	} {
		got, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.want) {
			t.Errorf("%s is not what cuda/launch/table.go generates: run make ptx (go run ./cuda/launch/gen) and commit", f.path)
		}
	}
}

// No other header or Go file defines a constant of the table a second
// time, where it could drift from the generated one.
func TestLaunchConstantsDefinedOnce(t *testing.T) {
	defRE := regexp.MustCompile(`(?m)^\s*#define\s+([A-Z0-9_]+)\b`)
	goRE := regexp.MustCompile(`(?m)^\s*([a-zA-Z0-9_]+)\s*=`)
	cNames, goNames := map[string]bool{}, map[string]bool{}
	for _, s := range launch.Table {
		for _, c := range s.Consts {
			cNames[c.C], goNames[c.Go] = true, true
		}
	}
	check := func(pattern string, re *regexp.Regexp, names map[string]bool, skip string) {
		files, err := filepath.Glob(pattern)
		if err != nil || len(files) == 0 {
			t.Fatalf("no files %s: %v", pattern, err)
		}
		for _, f := range files {
			if filepath.Base(f) == skip {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range re.FindAllSubmatch(data, -1) {
				if names[string(m[1])] {
					t.Errorf("%s defines %s, which cuda/launch/table.go generates", f, m[1])
				}
			}
		}
	}
	check(filepath.Join("..", "cuda", "*.cuh"), defRE, cNames, filepath.Base(launch.CUHPath))
	check(filepath.Join("..", "cuda", "*.cu"), defRE, cNames, "")
	check("*.go", goRE, goNames, filepath.Base(launch.GoPath))
}
