package preflight

import "testing"

func TestDeviceArg(t *testing.T) {
	cases := []struct {
		args []string
		want string
		ok   bool
	}{
		{[]string{"bench", "gemm"}, "", false},
		{[]string{"bench", "gemm", "--device", "gpu:1"}, "gpu:1", true},
		{[]string{"calibrate", "--device=cpu", "x.npy"}, "cpu", true},
		{[]string{"calibrate", "-device", "auto"}, "auto", true},
		{[]string{"calibrate", "--devices", "gpu"}, "", false},
		{[]string{"profile", "--", "train", "--device", "gpu"}, "", false},
		{[]string{"calibrate", "--device"}, "", false},
		{[]string{"device", "gpu"}, "", false},
	}
	for _, c := range cases {
		got, ok := DeviceArg(c.args)
		if got != c.want || ok != c.ok {
			t.Errorf("DeviceArg(%q) = %q, %v; want %q, %v", c.args, got, ok, c.want, c.ok)
		}
	}
}
