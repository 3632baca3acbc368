package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/fault"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/model/safetensors"
)

var (
	mergeOutFlag   = &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the merged checkpoint to directory `OUT`"}
	mergeForceFlag = &cli.BoolFlag{Name: "force", Usage: "replace OUT if it exists"}
)

var mergeCommand = &cli.Command{
	Name:      "merge",
	Usage:     "join the parts of `quantize --shard I/N` runs into one checkpoint",
	ArgsUsage: "PART... -o OUT",
	Description: "Each PART is a part directory (OUT/part-I-of-N of a quantize --shard run) or a parts\n" +
		"directory holding them. All N parts of the same plan (the same input, flags and quantkit:\n" +
		"part.json's plan_hash) must be there, once each. The tensors are written in the order one\n" +
		"unsharded run writes them, with the same shard size (the\n" +
		"parts' --shard-size unless --shard-size is given), config.json and side files, so the\n" +
		"result equals that run's output tensor for tensor. OUT is written atomically.",
	Flags:  []cli.Flag{mergeOutFlag, mergeForceFlag, quantSizeFlag},
	Action: runMerge,
}

func writePartInfo(dir string, p *plan.Plan, j *quantizeJob) error {
	b, err := plan.NewPart(p, j.shard.Index, j.shard.Count, j.shardSize).Marshal()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, plan.PartFileName), b, 0o666)
}

func runMerge(c *cli.Context) error {
	if err := merge(c); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	return nil
}

// partDirs expands the arguments: a directory with part.json is a part,
// one without is searched for part-*-of-* directories.
func partDirs(args []string) ([]string, error) {
	var dirs []string
	for _, a := range args {
		if _, err := os.Stat(filepath.Join(a, plan.PartFileName)); err == nil {
			dirs = append(dirs, a)
			continue
		}
		m, _ := filepath.Glob(filepath.Join(a, "part-*-of-*"))
		if len(m) == 0 {
			return nil, fmt.Errorf("%s: not a part (no %s) and holds no part-*-of-* directories", a, plan.PartFileName)
		}
		dirs = append(dirs, m...)
	}
	return dirs, nil
}

func merge(c *cli.Context) error {
	args, err := interspersed(c)
	if err != nil {
		return badInput(err)
	}
	if len(args) == 0 || c.String(mergeOutFlag.Name) == "" {
		return badInput(errors.New("give the part directories and the output: merge PART... -o OUT"))
	}
	out := c.String(mergeOutFlag.Name)
	shardSize, err := parseSize(c.String(quantSizeFlag.Name))
	if err != nil || shardSize <= 0 {
		return badInput(fmt.Errorf("--shard-size: must be a positive size: %q", c.String(quantSizeFlag.Name)))
	}
	dirs, err := partDirs(args)
	if err != nil {
		return badInput(err)
	}
	var first *plan.Part
	parts := map[int]*checkpoint.Checkpoint{}
	defer func() {
		for _, ck := range parts {
			ck.Close()
		}
	}()
	var dir0 string
	var inputs []string // every part's paths, which OUT must not hold
	for _, d := range dirs {
		info, err := plan.ReadPart(d)
		if err != nil {
			return badInput(err)
		}
		if first == nil {
			first = info
		}
		switch {
		case info.PlanHash != first.PlanHash || info.Count != first.Count:
			return badInput(fmt.Errorf("%s is part %d/%d of plan %s, not of plan %s (%d parts) like %s", d, info.Index, info.Count, info.PlanHash, first.PlanHash, first.Count, dirs[0]))
		case parts[info.Index] != nil:
			return badInput(fmt.Errorf("part %d/%d given twice (%s)", info.Index, info.Count, d))
		}
		ck, err := checkpoint.Open(d)
		if err != nil {
			return badInput(err)
		}
		parts[info.Index] = ck
		inputs = append(inputs, checkpointInputs(d, ck)...)
		if info.Index == 0 {
			dir0 = d
		}
	}
	for i := range first.Count {
		if parts[i] == nil {
			return badInput(fmt.Errorf("part %d of %d (of plan %s) is missing", i, first.Count, first.PlanHash))
		}
	}
	if !c.IsSet(quantSizeFlag.Name) && first.ShardSize > 0 {
		shardSize = first.ShardSize
	}
	where := map[string]*checkpoint.Checkpoint{}
	var infos []safetensors.TensorInfo
	var need int64
	for _, name := range first.Tensors {
		for _, ck := range parts {
			if t, ok := ck.Tensor(name); ok {
				where[name] = ck
				infos = append(infos, t)
				break
			}
		}
		if where[name] == nil {
			return badInput(fmt.Errorf("no part holds tensor %q", name))
		}
		need += infos[len(infos)-1].End - infos[len(infos)-1].Begin
	}
	claim, err := claimOutput(c.App.ErrWriter, out, c.Bool(mergeForceFlag.Name), need, inputs...)
	if err != nil {
		return err
	}
	dir, err := atomicfile.TempDir(claim)
	if err != nil {
		return err
	}
	defer dir.Abort() // nothing once committed
	tmp := dir.Path
	w, err := checkpoint.Create(tmp, infos, shardSize, parts[0].Metadata())
	if err != nil {
		return err
	}
	for _, name := range first.Tensors {
		afterWrite(out)
		if err := c.Context.Err(); err != nil {
			w.Abort()
			return err
		}
		ck := where[name]
		err := fault.Catch(func() error {
			b, err := ck.Bytes(name)
			if err == nil {
				err = w.WriteTensor(name, b)
			}
			return err
		})
		if err != nil {
			w.Abort()
			return noSpace(out, need, ck.Explain(err))
		}
	}
	for _, ck := range parts {
		if err := ck.Changed(); err != nil {
			w.Abort()
			return err
		}
	}
	if err := w.Close(); err != nil {
		return noSpace(out, need, err)
	}
	if err := parts[0].CopySideFiles(tmp); err != nil {
		return err
	}
	if err := dir.Commit(); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "merged %d parts of plan %s (%s from %s) into %s: %d tensors\n", first.Count, first.PlanHash, first.Format, dir0, out, len(infos))
	return nil
}
