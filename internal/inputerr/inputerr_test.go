package inputerr

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestMark(t *testing.T) {
	if Mark(nil) != nil {
		t.Error("Mark(nil) is not nil")
	}
	base := fmt.Errorf("x.json: %w", fs.ErrNotExist)
	err := fmt.Errorf("quantize: %w", Mark(base))
	if !Is(err) || !errors.Is(err, fs.ErrNotExist) || err.Error() != "quantize: x.json: file does not exist" {
		t.Errorf("marked error %q: Is %v, keeps its cause %v", err, Is(err), errors.Is(err, fs.ErrNotExist))
	}
	if Is(base) {
		t.Error("an unmarked error counts as marked")
	}
}
