package profile

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
)

// WriteTable writes r for people: the command and how it ended, then one
// row per source (energy, power, idle power, net energy, peak memory and
// mean utilization where the source has them), then the sources' notes.
func (r Report) WriteTable(w io.Writer) error {
	var b bytes.Buffer // written in one call, whose error is the table's
	status := fmt.Sprintf("exit status %d", r.ExitCode)
	if r.Signal != "" {
		status = fmt.Sprintf("killed by %s (exit status %d)", r.Signal, r.ExitCode)
	}
	fmt.Fprintf(&b, "profile: %s: %s after %.3f s\n", shellQuote(r.Command), status, r.Seconds)
	if len(r.Sources) == 0 {
		fmt.Fprintln(&b, "profile: no energy source measured")
		return write(w, &b)
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "source\tmethod\tseconds\tenergy\tavg/peak power\tidle power\tnet energy\tpeak memory\tmean util\tsamples")
	for _, s := range r.Sources {
		secs, energyCol, power := "-", "-", "-"
		if s.Method != MethodNone {
			secs = fmt.Sprintf("%.3f", s.Seconds)
			energyCol = fmt.Sprintf("%.1f J (%.4f Wh)", s.EnergyJ, s.EnergyWh)
			power = fmt.Sprintf("%.1f/%.1f W", s.AvgPowerW, s.PeakPowerW)
		}
		idle, net := "-", "-"
		if s.IdleW != nil {
			idle = fmt.Sprintf("%.1f W", *s.IdleW)
		}
		if s.NetEnergyJ != nil {
			net = fmt.Sprintf("%.1f J", *s.NetEnergyJ)
		}
		mem, util := "-", "-"
		if s.PeakMemoryBytes > 0 { // a source with state (a GPU), not RAPL
			mem = fmt.Sprintf("%.2f GiB", float64(s.PeakMemoryBytes)/(1<<30))
			util = fmt.Sprintf("%.0f %%", s.MeanUtilPct)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", s.Name, s.Method, secs, energyCol, power,
			idle, net, mem, util, s.Samples)
	}
	tw.Flush()
	for _, s := range r.Sources {
		if s.Note != "" {
			fmt.Fprintf(&b, "  %s: %s\n", s.Name, s.Note)
		}
	}
	return write(w, &b)
}

// write writes b to w in one call.
func write(w io.Writer, b *bytes.Buffer) error {
	_, err := w.Write(b.Bytes())
	return err
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// shellQuote is args as one would type them in a POSIX shell.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if shellSafe.MatchString(a) {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
