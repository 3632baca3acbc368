package gpu

// This test has no build tag: it reads kernels.go and the headers of
// ../cuda as text, so that the default build (CI without a GPU) catches a
// launch constant that drifted from its header.

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// mirrored are the header #defines kernels.go must mirror.
var mirrored = []string{
	"GEMM_S8_BM", "GEMM_S8_BN", "GEMM_S8_THREADS", "GEMM_S8_SMEM",
	"GEMM_F32_BM", "GEMM_F32_BN", "GEMM_F32_THREADS",
	"ABSMAX_THREADS", "ABSMAX_BLOCKS_PER_SM", "ABSMAX_ELEMS_PER_BLOCK",
	"HIST_THREADS", "HIST_BLOCKS_PER_SM", "HIST_ELEMS_PER_BLOCK", "HIST_SMEM_MAX_BINS",
	"QUANT_THREADS", "QUANT_VEC", "QUANT_BLOCKS_PER_SM",
	"LM_ROW_THREADS", "LM_ROPE_THREADS", "LM_ROPE_CHUNK", "LM_ELEM_THREADS", "LM_ELEM_BLOCKS_PER_SM",
	"LM_EMBED_THREADS", "LM_ATTN_THREADS", "LM_ATTN_CHUNK", "LM_ATTN_MAX_DIM", "LM_ROPE_MAX_ANGLE_LOG2",
	"PK_GEMV_WARPS", "PK_GEMV_THREADS", "PK_GEMV_MAX_M", "PK_GEMM_BM", "PK_GEMM_BN", "PK_GEMM_THREADS",
	"PK_HDR_F32", "PK_HDR_F32_ZP", "PK_HDR_F16",
}

func TestLaunchConstants(t *testing.T) {
	// Header #defines: NAME value // comment.
	hdr := map[string]string{}
	defRE := regexp.MustCompile(`^#define\s+([A-Z0-9_]+)\s+([^/]+?)\s*(//.*)?$`)
	for _, f := range []string{"gemm_s8.cuh", "gemm_f32.cuh", "reduce.cuh", "common.cuh", "lm.cuh", "packed.cuh"} {
		readLines(t, filepath.Join("..", "cuda", f), func(line string) {
			if m := defRE.FindStringSubmatch(line); m != nil {
				hdr[m[1]] = m[2]
			}
		})
	}
	// Go constants with the header name in their comment:
	// goName = value // HEADER_NAME.
	goDefs := map[string]string{}
	goFor := map[string]string{} // header name → Go name
	constRE := regexp.MustCompile(`^([a-zA-Z0-9_]+)\s*=\s*([^/]+?)\s*(?://\s*([A-Z0-9_]+)\b.*)?$`)
	for _, f := range []string{"kernels.go", "packed.go"} {
		readLines(t, f, func(line string) {
			if m := constRE.FindStringSubmatch(line); m != nil {
				goDefs[m[1]] = m[2]
				if m[3] != "" {
					goFor[m[3]] = m[1]
				}
			}
		})
	}
	for _, name := range mirrored {
		hv, ok := hdr[name]
		if !ok {
			t.Errorf("%s is not #defined in ../cuda/*.cuh", name)
			continue
		}
		gn, ok := goFor[name]
		if !ok {
			t.Errorf("no constant of kernels.go names %s in its comment", name)
			continue
		}
		want, ok1 := evalProduct(hv, hdr)
		got, ok2 := evalProduct(goDefs[gn], goDefs)
		switch {
		case !ok1 || !ok2:
			t.Errorf("cannot evaluate %s = %q or %s = %q", name, hv, gn, goDefs[gn])
		case got != want:
			t.Errorf("%s is %d in kernels.go, %s = %d (%s) in the header", gn, got, name, want, hv)
		}
	}
}

func readLines(t *testing.T, path string, fn func(string)) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fn(strings.TrimSpace(s.Text()))
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
}

// evalProduct evaluates a product of integers and names defined in defs,
// with optional parentheses around it.
func evalProduct(e string, defs map[string]string) (int, bool) {
	return evalDepth(e, defs, 0)
}

func evalDepth(e string, defs map[string]string, depth int) (int, bool) {
	if depth > 10 {
		return 0, false
	}
	e = strings.TrimSpace(e)
	for strings.HasPrefix(e, "(") && strings.HasSuffix(e, ")") {
		e = strings.TrimSpace(e[1 : len(e)-1])
	}
	p := 1
	for _, f := range strings.Split(e, "*") {
		f = strings.TrimSpace(f)
		if v, err := strconv.ParseInt(f, 0, 64); err == nil {
			p *= int(v)
			continue
		}
		if strings.Contains(f, "<<") {
			a, b, _ := strings.Cut(f, "<<")
			x, ok1 := evalDepth(a, defs, depth+1)
			y, ok2 := evalDepth(b, defs, depth+1)
			if !ok1 || !ok2 {
				return 0, false
			}
			p *= x << y
			continue
		}
		d, ok := defs[f]
		if !ok {
			return 0, false
		}
		v, ok := evalDepth(d, defs, depth+1)
		if !ok {
			return 0, false
		}
		p *= v
	}
	return p, true
}
