package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func argsTestApp() *cli.App {
	out := &cli.StringFlag{Name: "out", Aliases: []string{"o"}}
	return &cli.App{Commands: []*cli.Command{
		{Name: "quantize", Flags: []cli.Flag{out, deviceFlag, &cli.BoolFlag{Name: "json"}, &cli.StringFlag{Name: "json-out"}, &cli.IntFlag{Name: "workers"}}},
		{Name: "profile", Flags: []cli.Flag{&cli.StringFlag{Name: "gpu"}}},
		{Name: "bench", Subcommands: []*cli.Command{{Name: "gemm", Flags: []cli.Flag{&cli.BoolFlag{Name: "json"}, &cli.StringFlag{Name: "sizes"}}}}},
	}}
}

func TestResolveMovesFlagsAheadOfArguments(t *testing.T) {
	for _, c := range []struct {
		in, want []string
		warns    string
	}{
		{[]string{"quantize", "IN", "-o", "OUT", "--workers=2"}, []string{"quantize", "-o=OUT", "--workers=2", "IN"}, ""},
		{[]string{"quantize", "--json", "IN", "--device", "cpu"}, []string{"quantize", "--json", "--device=cpu", "IN"}, ""},
		// After "--" everything is an argument, and a "--" keeps such
		// arguments from being read as flags.
		{[]string{"quantize", "IN", "--", "-weird", "-o"}, []string{"quantize", "--", "IN", "-weird", "-o"}, ""},
		{[]string{"quantize", "-", "-o", "x"}, []string{"quantize", "-o=x", "-"}, ""},
		// The old --json FILE of quantize and demo becomes --json-out.
		{[]string{"quantize", "IN", "--json", "rep.json", "-o", "OUT"}, []string{"quantize", "--json-out=rep.json", "-o=OUT", "IN"}, "--json-out rep.json"},
		{[]string{"quantize", "--json=rep.JSON", "IN"}, []string{"quantize", "--json-out=rep.JSON", "IN"}, "deprecated"},
		{[]string{"quantize", "--json", "-", "IN"}, []string{"quantize", "--json", "IN"}, "use --json"},
		// profile's arguments are a command line: its flags stay its own.
		{[]string{"profile", "--gpu", "0", "python", "train.py", "--gpu", "1"}, []string{"profile", "--gpu=0", "--", "python", "train.py", "--gpu", "1"}, ""},
		{[]string{"bench", "gemm", "extra", "--sizes", "64"}, []string{"bench", "gemm", "--sizes=64", "extra"}, ""},
		// An unknown flag is moved as it is, for urfave/cli to refuse.
		{[]string{"quantize", "IN", "--bogus"}, []string{"quantize", "--bogus", "IN"}, ""},
		{[]string{"nosuch", "IN", "-o", "x"}, []string{"nosuch", "IN", "-o", "x"}, ""},
	} {
		var warn bytes.Buffer
		cl := resolve(argsTestApp(), append([]string{"quantkit"}, c.in...), &warn)
		if got := cl.Args[1:]; !slices.Equal(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
		if c.warns == "" && warn.Len() > 0 || !strings.Contains(warn.String(), c.warns) {
			t.Errorf("%q: warned %q, want %q", c.in, warn.String(), c.warns)
		}
	}
}

func TestResolveParsesWhatTheAppParses(t *testing.T) {
	var got []string
	var out string
	app := argsTestApp()
	app.Commands[0].Action = func(c *cli.Context) error {
		got, out = c.Args().Slice(), c.String("out")
		return nil
	}
	cl := resolve(app, []string{"quantkit", "quantize", "A", "-o", "B", "--", "-C"}, &bytes.Buffer{})
	if err := app.Run(cl.Args); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"A", "-C"}) || out != "B" {
		t.Errorf("args %q, -o %q; want [A -C], B", got, out)
	}
	if dev, ok := resolve(app, []string{"quantkit", "quantize", "A", "--device", "gpu:1"}, &bytes.Buffer{}).device(); !ok || dev != "gpu:1" {
		t.Errorf("device %q %v, want gpu:1", dev, ok)
	}
	if !cl.usesDevice() || resolve(app, []string{"quantkit", "profile"}, &bytes.Buffer{}).usesDevice() {
		t.Error("usesDevice: quantize has --device, profile has not")
	}
}

// TestExitStatus runs the test binary as quantkit: a command line that does
// not parse exits 2 with one line naming the problem; one that parses and
// fails exits 1.
func TestExitStatus(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{nil, 2, "no command given"},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"help", "bogus"}, 2, "No help topic"},
		{[]string{"inspect", "--bogus", "x"}, 2, "inspect: flag provided but not defined: -bogus"},
		{[]string{"bench", "gemm", "--sizes"}, 2, "bench gemm: flag needs an argument"},
		{[]string{"inspect", filepath.Join(t.TempDir(), "missing.safetensors")}, 1, "missing.safetensors"},
		{[]string{"version"}, 0, ""},
	} {
		cmd := exec.Command(os.Args[0], c.args...)
		cmd.Env = append(os.Environ(), "QUANTKIT_TEST_MAIN=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.code || !strings.Contains(stderr.String(), c.says) {
			t.Errorf("quantkit %q: exit %d, stderr %q; want %d and %q", c.args, code, stderr.String(), c.code, c.says)
		}
	}
}
