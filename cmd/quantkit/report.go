package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/jsonout"
	"github.com/quantkit/quantkit/internal/progress"
)

// One convention for every command with a report: the table for people on
// stdout; --json prints the report as JSON instead; --json-out FILE writes
// that JSON to a file beside the table. Side outputs (--json-out, --csv,
// --plot, caches) have their paths checked before any work and are written
// after the report, so that one that fails loses neither the report nor
// the others.
var (
	jsonFlag    = &cli.BoolFlag{Name: "json", Usage: "print the report as JSON on stdout instead of the table"}
	jsonOutFlag = &cli.StringFlag{Name: "json-out", Usage: "also write the report as JSON to `FILE`.json (the table still prints)"}
)

// checkJSONOut checks --json-out's path, when given, before any work: a
// .json file (as --csv takes a .csv one) in a directory that exists.
func checkJSONOut(c *cli.Context) error {
	if !c.IsSet(jsonOutFlag.Name) {
		return nil
	}
	return checkOutputFile(jsonOutFlag.Name, c.String(jsonOutFlag.Name), false, ".json")
}

// printReport prints v on the command's stdout: as JSON with --json, else
// as table writes it.
func printReport(c *cli.Context, v any, table func(io.Writer) error) error {
	if c.Bool(jsonFlag.Name) {
		return jsonout.Write(c.App.Writer, v)
	}
	return table(c.App.Writer)
}

// sideOutput is a file a command writes after its report: the flag that
// named it, and its content (write) or, for a writer that makes its own
// files (a plot), save.
type sideOutput struct {
	flag, path string
	write      func(io.Writer) error
	save       func(path string) error
}

// jsonOut is --json-out's side output: v as JSON.
func jsonOut(c *cli.Context, v any) sideOutput {
	return sideOutput{flag: jsonOutFlag.Name, path: c.String(jsonOutFlag.Name), write: func(w io.Writer) error { return jsonout.Write(w, v) }}
}

// writeSideFile writes a side output; tests replace it to make one fail.
var writeSideFile = atomicfile.WriteFile

// writeSideOutputs writes each output that has a path, atomically, in
// order. One that fails stops none of the others: the errors come back
// together, each naming its flag.
func writeSideOutputs(outs ...sideOutput) error {
	var errs []error
	for _, o := range outs {
		if o.path == "" {
			continue
		}
		var err error
		if o.save != nil {
			err = o.save(o.path)
		} else {
			var buf bytes.Buffer
			if err = o.write(&buf); err == nil {
				err = writeSideFile(o.path, buf.Bytes(), 0o666)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", o.flag, err)) // err names the file
		}
	}
	return errors.Join(errs...)
}

// report prints v (printReport), then writes --json-out: what a command
// without other side outputs does.
func report(c *cli.Context, v any, table func(io.Writer) error) error {
	if err := printReport(c, v, table); err != nil {
		return err
	}
	return writeSideOutputs(jsonOut(c, v))
}

// stepBar is a progress bar on stderr for a job that reports its steps as
// done of total with a label, none with --json (and none off a terminal);
// finish clears it.
func stepBar(c *cli.Context) (update func(done, total int, what string), finish func()) {
	var bar *progress.Bar // nil draws nothing
	if !c.Bool(jsonFlag.Name) {
		bar = progress.Start(0, "")
	}
	return func(done, total int, what string) {
		bar.SetTotal(int64(total))
		bar.Update(int64(done), what)
	}, bar.Finish
}
