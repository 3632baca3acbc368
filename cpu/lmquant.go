package cpu

import (
	"fmt"

	"github.com/quantkit/quantkit/backend"
)

// QuantizeRows is backend.QuantizeRowsS8 on cpu buffers (codes S8,
// scales and x F32), its rows split among workers.
func (*Backend) QuantizeRows(codes, scales, x backend.Buffer, rows, cols int) error {
	c, err := buf("QuantizeRows", "codes", codes, backend.S8)
	if err != nil {
		return err
	}
	s, err := f32s("QuantizeRows", scales, x)
	if err != nil {
		return err
	}
	if err := backend.CheckQuantizeRows(len(c.s8), len(s[0]), len(s[1]), rows, cols); err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	w := workers(rows, rows*cols, 1<<14)
	parallelTasks(w, rows, func(_, r int) {
		backend.QuantizeRowS8(c.s8[r*cols:(r+1)*cols], &s[0][r], s[1][r*cols:(r+1)*cols])
	})
	return nil
}
