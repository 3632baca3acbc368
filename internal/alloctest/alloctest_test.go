package alloctest

import "testing"

var sink []byte

func TestCheckCatchesAnOverAllocation(t *testing.T) {
	if err := Check("reader", 10, 4, 1<<10, func() { sink = make([]byte, 1<<20) }); err == nil {
		t.Fatal("a 1 MiB allocation for 10 input bytes passed a 1 KiB bound")
	}
	if err := Check("reader", 1<<20, 2, 1<<10, func() { sink = make([]byte, 1<<20) }); err != nil {
		t.Fatal(err)
	}
}
