package quantize

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/internal/output"
	"github.com/quantkit/quantkit/model/synth"
)

// GenerateOptions say what synthetic checkpoint Generate writes, and where.
type GenerateOptions struct {
	Output string // the checkpoint's directory
	Config synth.Config
	// ShardSize splits the tensor data into shards of at most this many
	// bytes, with an index, as Hugging Face does; 0 writes one file.
	ShardSize int64
	Force     bool // replace Output if it exists (an empty directory needs no Force)
	// Progress, if not nil, is called after each block of data written,
	// with the tensor bytes written so far and their total.
	Progress func(written, total int64)
	// Log receives notes for the user (a killed run's output removed);
	// nil discards them.
	Log io.Writer
}

// GenerateReport says what Generate wrote; its JSON is `quantkit gen
// --json`'s.
type GenerateReport struct {
	Dir     string          `json:"dir"`
	Config  synth.Config    `json:"config"`
	Files   []GeneratedFile `json:"files"`
	Tensors int             `json:"tensors"`
	Params  int64           `json:"params"`
	Bytes   int64           `json:"bytes"` // tensor data, without headers
	Seconds float64         `json:"seconds"`
	Rate    float64         `json:"bytes_per_second"`
	Elapsed time.Duration   `json:"-"`
}

// GeneratedFile is one file Generate wrote.
type GeneratedFile struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// Generate writes the synthetic checkpoint opt.Config describes
// (synth.WriteContext) to opt.Output as Run writes its output: the output
// is claimed first (an existing one refused unless Force, the space it
// needs checked), the files go into a temporary directory beside it, which
// becomes the output only when complete; a failure or a cancelled ctx
// leaves nothing.
func Generate(ctx context.Context, opt GenerateOptions) (*GenerateReport, error) {
	cfg := opt.Config
	if err := cfg.Validate(); err != nil {
		return nil, inputerr.Mark(err)
	}
	if opt.ShardSize < 0 {
		return nil, inputerr.Mark(fmt.Errorf("shard size %d is negative", opt.ShardSize))
	}
	claim, err := output.Claim(opt.Log, opt.Output, opt.Force, cfg.Bytes())
	if err != nil {
		return nil, err
	}
	tmp, err := atomicfile.TempDir(claim)
	if err != nil {
		return nil, err
	}
	defer tmp.Abort() // nothing once committed
	start := time.Now()
	res, err := synth.WriteContext(ctx, tmp.Path, cfg, synth.Options{ShardSize: opt.ShardSize, Progress: opt.Progress})
	if err == nil {
		err = tmp.Commit()
	}
	if err != nil {
		return nil, output.NoSpace(opt.Output, cfg.Bytes(), err)
	}
	rep := &GenerateReport{Dir: opt.Output, Config: cfg, Tensors: res.Tensors, Params: res.Params, Bytes: res.Bytes, Elapsed: time.Since(start)}
	rep.Seconds = rep.Elapsed.Seconds()
	rep.Rate = float64(rep.Bytes) / max(rep.Seconds, 1e-9)
	for _, f := range res.Files {
		fi, err := os.Stat(filepath.Join(opt.Output, f))
		if err != nil {
			return nil, err
		}
		rep.Files = append(rep.Files, GeneratedFile{f, fi.Size()})
	}
	return rep, nil
}
