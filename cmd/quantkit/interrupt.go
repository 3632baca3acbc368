package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/internal/atomicfile"
)

// interruptGrace is how long a command has, after SIGINT or SIGTERM
// cancelled its context, to stop its workers and remove its temporaries
// itself before quantkit removes them and exits anyway.
var interruptGrace = 3 * time.Second

// stopSignals are the signals that stop a command: Ctrl-C, kill's default,
// and a closed terminal.
var stopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// interruptible wraps a command's action so that SIGINT, SIGTERM and
// SIGHUP stop it cleanly: its context (c.Context) is cancelled, which stops
// the workers of quantize, dequantize and merge; whatever temporary output
// is left (atomicfile keeps the list) is removed; and quantkit exits with
// 128 + the signal's number (130 for SIGINT, 143 for SIGTERM) and one line
// saying so (main prints it). A command that has not returned interruptGrace after the
// signal, or a second signal, makes quantkit remove the temporaries and
// exit at once. Destinations are never touched: an output is either
// complete and in place or absent.
func interruptible(action cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		ctx, cancel := context.WithCancel(c.Context)
		defer cancel()
		sigs := make(chan os.Signal, 2)
		signal.Notify(sigs, stopSignals...)
		defer signal.Stop(sigs)
		got := make(chan os.Signal, 1)
		done := make(chan struct{})
		defer close(done)
		go func() {
			var sig os.Signal
			select {
			case sig = <-sigs:
			case <-done:
				return
			}
			got <- sig
			if isTerminal(os.Stderr) {
				fmt.Fprint(os.Stderr, "\r\033[K") // clear a progress bar
			}
			cancel()
			select {
			case <-sigs:
			case <-time.After(interruptGrace):
			case <-done:
				return
			}
			removed := atomicfile.Cleanup()
			fmt.Fprintf(os.Stderr, "quantkit: %s: %s; %s\n", commandPath(c), signalName(sig), removedNote(removed))
			os.Exit(signalStatus(sig))
		}()
		c.Context = ctx
		err := action(c)
		select {
		case sig := <-got:
			removed := atomicfile.Cleanup()
			return &exitStatus{Code: signalStatus(sig), Err: fmt.Errorf("%s: %s; %s", commandPath(c), signalName(sig), removedNote(removed))}
		default:
			return err
		}
	}
}

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "interrupted (SIGINT)"
	case syscall.SIGTERM:
		return "terminated (SIGTERM)"
	case syscall.SIGHUP:
		return "hung up (SIGHUP)"
	}
	return sig.String()
}

func signalStatus(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 1
}

// removedNote ends the line quantkit prints when a signal stopped it:
// the command has removed its temporaries itself, or Cleanup did.
func removedNote(removed []string) string {
	if len(removed) == 0 {
		return "no unfinished output left behind"
	}
	return "removed the unfinished output (" + strings.Join(removed, ", ") + ")"
}

// withInterrupts returns copies of cmds (and of their subcommands) whose
// actions are interruptible, except those named in except, which handle
// signals themselves (profile forwards them to its command).
func withInterrupts(cmds []*cli.Command, except ...string) []*cli.Command {
	out := make([]*cli.Command, len(cmds))
	for i, cmd := range cmds {
		cp := *cmd
		if !slices.Contains(except, cmd.Name) {
			if cp.Action != nil {
				cp.Action = interruptible(cp.Action)
			}
			cp.Subcommands = withInterrupts(cp.Subcommands)
		}
		out[i] = &cp
	}
	return out
}

// commandPath is the command being run as the user typed it, without the
// program's name: "quantize", "bench checkpoint".
func commandPath(c *cli.Context) string {
	var names []string
	for _, ctx := range c.Lineage() {
		if ctx.Command != nil && ctx.Command.Name != "" && ctx.Command.Name != ctx.App.Name {
			names = append(names, ctx.Command.Name)
		}
	}
	slices.Reverse(names)
	return strings.Join(names, " ")
}
