package plan

import (
	"go/build"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The layering rule of DESIGN.md: model and quant never import a backend;
// only cmd and jobs pick a device. Every package under model/ and quant/,
// and everything of this module they import, directly or not, is checked,
// in the default build and with the cuda tag, test files included.
func TestLayering(t *testing.T) {
	const module = "github.com/quantkit/quantkit"
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !strings.Contains(string(b), "module "+module+"\n") {
		t.Fatalf("%s is not the module root: %v", root, err)
	}
	forbidden := []string{"cpu", "gpu", "backend", "cuda"}
	isForbidden := func(path string) bool {
		rel, ok := strings.CutPrefix(path, module+"/")
		if !ok {
			return false
		}
		for _, f := range forbidden {
			if rel == f || strings.HasPrefix(rel, f+"/") {
				return true
			}
		}
		return false
	}
	var starts []string
	for _, top := range []string{"model", "quant"} {
		filepath.WalkDir(filepath.Join(root, top), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && d.Name() != "testdata" {
				rel, _ := filepath.Rel(root, p)
				starts = append(starts, module+"/"+filepath.ToSlash(rel))
			}
			return nil
		})
	}
	if len(starts) < 5 {
		t.Fatalf("found only %v under model/ and quant/", starts)
	}
	for _, tags := range [][]string{nil, {"cuda"}} {
		ctx := build.Default
		ctx.BuildTags = tags
		// via[p] is the package that imported p first: the chain to report.
		via := map[string]string{}
		queue := append([]string(nil), starts...)
		for _, s := range starts {
			via[s] = ""
		}
		checked := 0
		for len(queue) > 0 {
			path := queue[0]
			queue = queue[1:]
			dir := filepath.Join(root, strings.TrimPrefix(path, module))
			pkg, err := ctx.ImportDir(dir, 0)
			if _, ok := err.(*build.NoGoError); ok {
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			checked++
			imports := append(append(append([]string(nil), pkg.Imports...), pkg.TestImports...), pkg.XTestImports...)
			for _, imp := range imports {
				if !strings.HasPrefix(imp, module+"/") {
					continue
				}
				if isForbidden(imp) {
					chain := imp
					for p := path; p != ""; p = via[p] {
						chain = p + " → " + chain
					}
					t.Errorf("tags %v: %s", tags, chain)
					continue
				}
				if _, seen := via[imp]; !seen {
					via[imp] = path
					queue = append(queue, imp)
				}
			}
		}
		if checked < len(starts)/2 {
			t.Fatalf("checked only %d packages", checked)
		}
	}
}
