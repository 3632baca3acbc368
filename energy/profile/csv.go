package profile

import (
	"encoding/csv"
	"io"
	"strconv"
	"strings"
)

// CSVHeader is the header of WriteCSV. Each row is one sample of one
// source: t_seconds counts from the command's start (the first sample,
// taken just before it, is slightly negative); power_w is empty where the
// sample has no power; throttle joins the active throttle reasons with
// '|'; fields a source does not report are 0.
var CSVHeader = []string{"source", "t_seconds", "power_w", "sm_clock_mhz", "mem_clock_mhz",
	"temperature_c", "memory_used_bytes", "util_pct", "throttle"}

// WriteCSV writes the power curves as CSVHeader describes.
func WriteCSV(w io.Writer, curves []Curve) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	for _, c := range curves {
		for _, s := range c.Samples {
			power := ""
			if !s.NoPower {
				power = strconv.FormatFloat(s.PowerW, 'f', 3, 64)
			}
			cw.Write([]string{
				c.Source,
				strconv.FormatFloat((c.Offset + s.T).Seconds(), 'f', 4, 64),
				power,
				strconv.Itoa(s.SMClockMHz),
				strconv.Itoa(s.MemClockMHz),
				strconv.Itoa(s.TemperatureC),
				strconv.FormatUint(s.MemoryUsed, 10),
				strconv.Itoa(s.UtilPct),
				strings.Join(s.Throttle, "|"),
			})
		}
	}
	cw.Flush()
	return cw.Error()
}
