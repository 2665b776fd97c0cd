// Command rulecheck checks, tests and backtests cityhub rule packs:
//
//	rulecheck check    PATH...   validate and lint packs (file:line:col)
//	rulecheck test     PATH...   run rule tests
//	rulecheck backtest ...       replay recorded events through packs
//
// See package rulecheck, or run rulecheck without arguments.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cityhub/cityhub/services/ruler/rulecheck"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := rulecheck.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
