package quantize

import (
	"bufio"
	"cmp"
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/fault"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/internal/jsonobj"
	"github.com/quantkit/quantkit/internal/output"
	modelformat "github.com/quantkit/quantkit/model/format"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/ggufmix"
	"github.com/quantkit/quantkit/model/plan"
)

// GGUFPartFile is the GGUF file in a part directory of a sharded RunGGUF,
// beside part.json: the whole plan's metadata and the part's tensors.
const GGUFPartFile = "part.gguf"

// GGUFPartFormat is part.json's format of a GGUF part.
const GGUFPartFormat = "gguf"

// GGUFPart is part.json of a GGUF part: which part of which plan the
// directory holds, and the whole plan's tensors with the part of each.
type GGUFPart struct {
	PlanHash string `json:"plan_hash"`
	Index    int    `json:"index"`
	Count    int    `json:"count"`
	Format   string `json:"format"` // GGUFPartFormat
	Type     string `json:"type"`   // the mix, as llama-quantize names it
	Pure     bool   `json:"pure"`
	// Tensors are every output tensor of the whole plan, in output order.
	Tensors []GGUFPartTensor `json:"tensors"`
	// Files are the part directory's files (plan.HashPartFiles), which
	// merge checks before it reads them.
	Files []plan.PartFile `json:"files"`
}

// GGUFPartTensor is one output tensor of a GGUF plan and the part that
// writes it.
type GGUFPartTensor struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Dims []int  `json:"dims"` // ggml order, as in the file
	Part int    `json:"part"`
}

// GGUFPartOf assigns tensors of the given costs to n parts, balanced:
// the largest first, each to the part with the least cost so far (the
// lowest index among equals), the greedy rule that keeps the largest part
// within 4/3 of the best possible. Cutting the output order every n-th
// tensor would not balance: a Llama layer repeats the same nine tensors,
// so with n = 3 one part would get every FFN matrix and another only
// attn_v and the norms, and the embedding and output tables, the largest
// tensors, would land wherever their position puts them. The result
// depends on the costs alone, so every part computes the same assignment.
func GGUFPartOf(costs []int64, n int) []int {
	order := make([]int, len(costs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(costs[b], costs[a]) })
	h := make(partHeap, n)
	for i := range h {
		h[i] = partLoad{index: i}
	}
	out := make([]int, len(costs))
	for _, i := range order {
		out[i] = h[0].index
		h[0].cost += costs[i]
		heap.Fix(&h, 0)
	}
	return out
}

type partLoad struct {
	cost  int64
	index int
}

// partHeap is a min-heap of parts by cost, then index.
type partHeap []partLoad

func (h partHeap) Len() int { return len(h) }
func (h partHeap) Less(i, j int) bool {
	return h[i].cost < h[j].cost || (h[i].cost == h[j].cost && h[i].index < h[j].index)
}
func (h partHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *partHeap) Push(x any)   { *h = append(*h, x.(partLoad)) }
func (h *partHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// planHash identifies the whole GGUF plan: the mix and --pure, the input
// (every tensor's name, type and dims, and the bytes of its first and last
// rows: a fingerprint that tells two fine-tunes of one architecture apart
// without reading the model in every part) and the whole output header
// (the metadata, every tensor's name, type, dims and offset).
func (j *ggufJob) planHash() (string, error) {
	h := sha256.New()
	type input struct {
		Name string
		Type string
		Dims []int
	}
	var inputs []input
	for _, t := range j.inputs {
		inputs = append(inputs, input{t.Name, t.Type.String(), t.Dims})
	}
	json.NewEncoder(h).Encode(struct {
		Format string
		Type   string
		Pure   bool
		Inputs []input
	}{GGUFPartFormat, j.rep.Mix, j.rep.Pure, inputs})
	for _, t := range j.inputs { // parts quantized with other importance differ
		if w := j.importance[t.Name]; w != nil {
			binary.Write(h, binary.LittleEndian, w)
		}
	}
	var fbuf []float32
	for _, t := range j.inputs {
		if err := j.fingerprint(h, t, &fbuf); err != nil {
			return "", err
		}
	}
	if _, err := gguf.NewWriter(h, j.meta, j.infos); err != nil {
		return "", inputerr.Mark(fmt.Errorf("%s: %w", j.rep.Input, err))
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// fingerprint writes the first and last rows of input tensor t to h: its
// bytes when the source gives them, else its values as float32.
func (j *ggufJob) fingerprint(h hash.Hash, t gguf.TensorInfo, fbuf *[]float32) error {
	cols := rowLen(t)
	if t.Len() == 0 || cols == 0 {
		return nil
	}
	rows := t.Len() / cols
	if j.raw != nil {
		row, err := t.Type.RowSize(cols)
		if err != nil {
			return fmt.Errorf("%s: tensor %q: %w", j.rep.Input, t.Name, err)
		}
		return fault.Catch(func() error {
			b, err := j.raw.Bytes(t.Name)
			if err != nil {
				return err
			}
			if int64(len(b)) < row {
				return fmt.Errorf("%s: tensor %q holds %d bytes, less than a row", j.rep.Input, t.Name, len(b))
			}
			h.Write(b[:row])
			h.Write(b[int64(len(b))-row:])
			return nil
		})
	}
	if int64(cap(*fbuf)) < cols {
		*fbuf = make([]float32, cols)
	}
	dst := (*fbuf)[:cols]
	var b [4]byte
	for _, r := range []int64{0, rows - 1} {
		if err := j.src.ReadFloat32(t.Name, r, dst); err != nil {
			return err
		}
		for _, v := range dst {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			h.Write(b[:])
		}
	}
	return nil
}

// restrict keeps in the job only the tensors of part s (GGUFPartOf on
// the tensors' input bytes, the measure of the work of converting them),
// remembering the whole plan for part.json.
func (j *ggufJob) restrict(s *ShardSpec) {
	costs := make([]int64, len(j.rep.Tensors))
	for i, t := range j.rep.Tensors {
		costs[i] = t.BytesIn
	}
	j.partOf = GGUFPartOf(costs, s.Count)
	j.all = j.infos
	var infos, inputs []gguf.TensorInfo
	tensors := []GGUFTensor{}
	for i, p := range j.partOf {
		if p == s.Index {
			infos = append(infos, j.infos[i])
			inputs = append(inputs, j.inputs[i])
			tensors = append(tensors, j.rep.Tensors[i])
		}
	}
	j.infos, j.inputs, j.rep.Tensors = infos, inputs, tensors
	j.rep.Output = s.Dir(j.opt.Output)
}

// part is the part.json of the job's shard.
func (j *ggufJob) part() *GGUFPart {
	s := j.opt.Shard
	p := &GGUFPart{PlanHash: j.rep.PlanHash, Index: s.Index, Count: s.Count, Format: GGUFPartFormat, Type: j.rep.Mix, Pure: j.rep.Pure}
	for i, t := range j.all {
		p.Tensors = append(p.Tensors, GGUFPartTensor{Name: t.Name, Type: t.Type.String(), Dims: slices.Clone(t.Dims), Part: j.partOf[i]})
	}
	return p
}

// writePart writes the part directory claim.Path atomically: GGUFPartFile
// with the part's tensors, and part.json.
func (j *ggufJob) writePart(ctx context.Context, claim *atomicfile.Claim, progress func(Progress)) error {
	tmp, err := atomicfile.TempDir(claim)
	if err != nil {
		return err
	}
	defer tmp.Abort() // nothing once committed
	f, err := os.OpenFile(filepath.Join(tmp.Path, GGUFPartFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	err = j.writeTo(ctx, f, claim.Path, progress)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	part := j.part()
	if part.Files, err = plan.HashPartFiles(tmp.Path); err != nil {
		return err
	}
	b, err := part.Marshal()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp.Path, plan.PartFileName), b, 0o666); err != nil {
		return err
	}
	if ch, ok := j.src.(changer); ok {
		if err := ch.Changed(); err != nil {
			return err
		}
	}
	return tmp.Commit()
}

// Marshal encodes the part as part.json's bytes.
func (p *GGUFPart) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(p, "", "  ")
	return append(b, '\n'), err
}

// ParseGGUFPart decodes and checks a GGUF part.json: an object with
// exactly the fields of GGUFPart, each once; format GGUFPartFormat; a
// known type; index in [0, count), count in [1, plan.MaxParts]; tensors
// with unique non-empty names, known types, 1 to gguf.MaxDims dims of a
// size that does not overflow, and a part in [0, count); files as
// plan.ValidatePartFileList wants them.
func ParseGGUFPart(data []byte) (*GGUFPart, error) {
	members, err := jsonobj.Members(data)
	if err != nil {
		return nil, err
	}
	known := []string{"plan_hash", "index", "count", "format", "type", "pure", "tensors", "files"}
	if err := plan.CheckPartFields(members, known); err != nil {
		return nil, err
	}
	if len(members) != len(known) {
		return nil, fmt.Errorf("%d of the fields %s present, want all", len(members), strings.Join(known, ", "))
	}
	var p GGUFPart
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, err
	}
	switch {
	case p.Format != GGUFPartFormat:
		return nil, fmt.Errorf("format %q is not %q", p.Format, GGUFPartFormat)
	case p.PlanHash == "" || len(p.PlanHash) > 64 || strings.ContainsFunc(p.PlanHash, func(r rune) bool { return !strings.ContainsRune("0123456789abcdef", r) }):
		return nil, fmt.Errorf("plan_hash %q is not a hexadecimal hash", p.PlanHash)
	case p.Count < 1 || p.Count > plan.MaxParts:
		return nil, fmt.Errorf("count %d is not in [1, %d]", p.Count, plan.MaxParts)
	case p.Index < 0 || p.Index >= p.Count:
		return nil, fmt.Errorf("index %d is not in [0, count %d)", p.Index, p.Count)
	case len(p.Tensors) == 0:
		return nil, errors.New("tensors is empty")
	}
	if _, err := ggufmix.ParseMix(p.Type); err != nil {
		return nil, fmt.Errorf("type: %w", err)
	}
	seen := make(map[string]bool, len(p.Tensors))
	for _, t := range p.Tensors {
		typ, ok := gguf.ParseType(t.Type)
		switch {
		case t.Name == "" || len(t.Name) > gguf.MaxTensorNameLen:
			return nil, fmt.Errorf("tensor name of %d bytes", len(t.Name))
		case seen[t.Name]:
			return nil, fmt.Errorf("tensor %q listed twice", t.Name)
		case !ok:
			return nil, fmt.Errorf("tensor %q: unknown type %q", t.Name, t.Type)
		case len(t.Dims) < 1 || len(t.Dims) > gguf.MaxDims:
			return nil, fmt.Errorf("tensor %q: %d dims", t.Name, len(t.Dims))
		case t.Part < 0 || t.Part >= p.Count:
			return nil, fmt.Errorf("tensor %q: part %d is not in [0, count %d)", t.Name, t.Part, p.Count)
		}
		if _, err := sizeOf(typ, t.Dims); err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		seen[t.Name] = true
	}
	if err := plan.ValidatePartFileList(p.Files); err != nil {
		return nil, err
	}
	return &p, nil
}

// ReadGGUFPart reads and checks dir's part.json (ParseGGUFPart); errors
// name the file.
func ReadGGUFPart(dir string) (*GGUFPart, error) {
	path := filepath.Join(dir, plan.PartFileName)
	data, err := modelformat.ReadFile(path, plan.MaxPartFileLen)
	if err != nil {
		return nil, err
	}
	p, err := ParseGGUFPart(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// isGGUFPart reports whether dir's part.json says format "gguf". A
// part.json that cannot be read says no: the checkpoint merge then names
// what is wrong with it.
func isGGUFPart(dir string) bool {
	data, err := modelformat.ReadFile(filepath.Join(dir, plan.PartFileName), plan.MaxPartFileLen)
	if err != nil {
		return false
	}
	var p struct {
		Format string `json:"format"`
	}
	return json.Unmarshal(data, &p) == nil && p.Format == GGUFPartFormat
}

// ggufPartFile is an open part: its part.json, its GGUF file and what the
// file was when opened.
type ggufPartFile struct {
	dir  string
	info *GGUFPart
	f    *gguf.File
	path string
	stat os.FileInfo
}

// changed says whether the part's GGUF file was replaced or rewritten
// since it was opened.
func (p *ggufPartFile) changed() error {
	fi, err := os.Stat(p.path)
	if err == nil && (!os.SameFile(fi, p.stat) || fi.Size() != p.stat.Size() || !fi.ModTime().Equal(p.stat.ModTime())) {
		err = errors.New("changed while it was being read")
	}
	if err != nil {
		return fmt.Errorf("%s: %w; nothing was written", p.path, err)
	}
	return nil
}

// mergeGGUF is Merge for GGUF parts: the N parts of one plan (each once,
// the same plan hash) joined into the GGUF file one unsharded RunGGUF
// writes, byte for byte: the metadata of the parts' files, the tensors in
// the plan's order, each from the part that holds it. The file is written
// atomically and the merge stops when ctx is done, leaving nothing.
func mergeGGUF(ctx context.Context, opt MergeOptions, dirs []string, start time.Time) (*MergeReport, error) {
	if opt.ShardSize != 0 {
		return nil, inputerr.Mark(errors.New("--shard-size does not apply to GGUF parts: the merged output is one .gguf file"))
	}
	manifests := make([]*GGUFPart, len(dirs))
	ids := make([]partID, len(dirs))
	for i, d := range dirs {
		info, err := ReadGGUFPart(d)
		if err != nil {
			if !isGGUFPart(d) {
				err = fmt.Errorf("%s is not a GGUF part (its part.json is not of format %q) but %s is: merge the parts of one run", d, GGUFPartFormat, dirs[0])
			}
			return nil, inputerr.Mark(err)
		}
		manifests[i], ids[i] = info, partID{d, info.PlanHash, info.Index, info.Count}
	}
	dirs, err := checkPartSet(ids)
	if err != nil {
		return nil, err
	}
	byIndex := make([]*GGUFPart, len(dirs))
	files := make([][]plan.PartFile, len(dirs))
	for _, info := range manifests {
		byIndex[info.Index], files[info.Index] = info, info.Files
	}
	if err := verifyParts(dirs, files); err != nil {
		return nil, inputerr.Mark(err)
	}
	parts := make([]*ggufPartFile, len(dirs))
	defer func() {
		for _, p := range parts {
			if p != nil {
				p.f.Close()
			}
		}
	}()
	var inputs []string
	for i, d := range dirs {
		info := byIndex[i]
		if i > 0 && (!reflect.DeepEqual(info.Tensors, byIndex[0].Tensors) || info.Type != byIndex[0].Type || info.Pure != byIndex[0].Pure) {
			return nil, inputerr.Mark(fmt.Errorf("%s: part.json says plan %s like %s but lists other tensors or types", d, info.PlanHash, dirs[0]))
		}
		path := filepath.Join(d, GGUFPartFile)
		f, err := gguf.Open(path)
		if err != nil {
			return nil, inputerr.Mark(err)
		}
		p := &ggufPartFile{dir: d, info: info, f: f, path: path}
		parts[i] = p
		if p.stat, err = os.Stat(path); err != nil {
			return nil, err
		}
		if err := p.check(); err != nil {
			return nil, inputerr.Mark(err)
		}
		if i > 0 && !reflect.DeepEqual(f.Metadata(), parts[0].f.Metadata()) {
			return nil, inputerr.Mark(fmt.Errorf("%s: its metadata differs from %s's, though both are of plan %s", path, parts[0].path, info.PlanHash))
		}
		inputs = append(inputs, d, path)
	}
	first := parts[0]
	rep := &MergeReport{Output: opt.Output, PlanHash: first.info.PlanHash, Format: plan.Format(GGUFPartFormat), Parts: dirs}
	var infos []gguf.TensorInfo
	for _, t := range first.info.Tensors {
		ti, _ := parts[t.Part].f.Tensor(t.Name) // there: check
		infos = append(infos, ti)
		rep.Bytes += ti.Size
	}
	rep.Tensors = len(infos)
	out, need := opt.Output, rep.Bytes
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		return nil, inputerr.Mark(fmt.Errorf("%s is a directory; GGUF parts merge into one .gguf file", out))
	}
	claim, err := output.Claim(opt.Log, out, opt.Force, need, inputs...)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o777); err != nil {
		return nil, err
	}
	f, err := atomicfile.CreateFor(claim)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", out, err)
	}
	defer f.Abort() // nothing once committed
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := gguf.NewWriter(bw, first.f.Metadata(), infos)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", out, err)
	}
	var done int64
	for i, t := range first.info.Tensors {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := parts[t.Part]
		err := fault.Catch(func() error {
			b, err := p.f.Bytes(t.Name)
			if err == nil {
				err = w.WriteTensor(t.Name, b)
			}
			done += int64(len(b))
			p.f.Release(t.Name) // copied: its pages may go
			return err
		})
		if fe := (*fault.Error)(nil); errors.As(err, &fe) {
			err = fmt.Errorf("%s: %w", p.path, err)
		}
		if err != nil {
			return nil, output.NoSpace(out, need, err)
		}
		if opt.Progress != nil {
			opt.Progress(Progress{Output: out, Tensor: t.Name, BytesDone: done, BytesTotal: need, TensorsDone: i + 1, TensorsTotal: len(infos)})
		}
	}
	err = w.Close()
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return nil, output.NoSpace(out, need, err)
	}
	for i := range first.info.Count {
		if err := parts[i].changed(); err != nil {
			return nil, err
		}
	}
	if err := f.Commit(); err != nil {
		return nil, output.NoSpace(out, need, err)
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// check says whether the part's GGUF file holds exactly the tensors
// part.json gives it, in plan order, of the types and dims it lists.
func (p *ggufPartFile) check() error {
	var want []GGUFPartTensor
	for _, t := range p.info.Tensors {
		if t.Part == p.info.Index {
			want = append(want, t)
		}
	}
	got := p.f.Tensors()
	for i, t := range got {
		if i >= len(want) {
			return fmt.Errorf("%s holds tensor %q, which part.json gives to no part or to another part than %d", p.path, t.Name, p.info.Index)
		}
		w := want[i]
		if t.Name != w.Name {
			return fmt.Errorf("%s holds tensor %q where part.json lists %q for part %d", p.path, t.Name, w.Name, p.info.Index)
		}
		if t.Type.String() != w.Type || !slices.Equal(t.Dims, w.Dims) {
			return fmt.Errorf("%s: tensor %q is %s %v, part.json says %s %v", p.path, t.Name, t.Type, t.Dims, w.Type, w.Dims)
		}
	}
	if len(got) < len(want) {
		return fmt.Errorf("%s lacks tensor %q (and any after it) of part %d", p.path, want[len(got)].Name, p.info.Index)
	}
	return nil
}
