package main

import "github.com/urfave/cli/v2"

// usesDevice reports whether args name a command that has the --device
// flag, that is, one that computes.
func usesDevice(app *cli.App, args []string) bool {
	cmds := app.Commands
	var found *cli.Command
	for _, a := range args[1:] {
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(a) {
				next = c
			}
		}
		if next == nil {
			break
		}
		found, cmds = next, next.Subcommands
	}
	if found == nil {
		return false
	}
	for _, f := range found.Flags {
		if f == deviceFlag {
			return true
		}
	}
	return false
}
