package fastpath

import (
	"fmt"

	"github.com/expr-lang/expr/vm"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// Runner runs the programs of one Conditions on one event at a time. It is
// not safe for concurrent use; give each goroutine its own.
type Runner struct {
	machine *vm.VM
	env     env
	cur     *cityhubv1.Event
}

// NewRunner returns a Runner that runs c's programs on machine. Programs
// that need it (Program.NeedsEnv) read e, which the caller fills with the
// current event.
func (c *Conditions) NewRunner(machine *vm.VM, e *rulepack.Env) *Runner {
	r := &Runner{machine: machine}
	r.env.Env = e
	// One closure per runner, made once: the programs call it with a
	// constant, and it reads the current event.
	r.env.Test = func(k int) bool { return c.tests[k].eval(r.cur) }
	return r
}

// Begin makes ev the event programs run on.
func (r *Runner) Begin(ev *cityhubv1.Event) { r.cur = ev }

// Run runs p, a program of the runner's Conditions, on the current event
// and reports whether it held; an error is the condition's evaluation
// error. For a program that does not need the environment Run allocates
// nothing unless it fails.
func (r *Runner) Run(p *Program) (held bool, err error) {
	if p.eval == nil {
		return r.runVM(p)
	}
	// A test panics where the VM would fail (expr's runtime raised it):
	// that is the condition's evaluation error, as the VM would report it.
	defer func() {
		if x := recover(); x != nil {
			held, err = false, fmt.Errorf("%v", x)
		}
	}()
	return p.eval(r.cur), nil
}

// runVM runs p's program on the VM.
func (r *Runner) runVM(p *Program) (bool, error) {
	var v any
	var err error
	if p.patched {
		v, err = r.machine.Run(p.program, &r.env)
	} else {
		v, err = r.machine.Run(p.program, r.env.Env)
	}
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	return ok && b, nil
}
