package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// child is a measured process: its CPU time comes from the kernel's accounting when it exits, its
// peak RSS from /proc while it still runs.
//
// Peak RSS is not taken from rusage's Maxrss: Go starts children with vfork semantics (CLONE_VM),
// and at exec the kernel folds the shared address space's high-water mark, the parent's, into the
// child's maxrss, so every child would report at least the benchmark's own size.
type child struct {
	cmd *exec.Cmd
	out bytes.Buffer // stdout and stderr, for error messages
	rss float64      // VmHWM in MiB, read by stop
}

// startChild starts bin with exactly env (nothing inherited).
func startChild(bin string, env []string, args ...string) (*child, error) {
	c := &child{cmd: exec.Command(bin, args...)}
	c.cmd.Env = append([]string{}, env...) // non-nil: a nil Env would inherit this process's
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	return c, nil
}

// stop reads the peak RSS, sends SIGTERM and waits for a clean exit.
func (c *child) stop() error {
	kib, rssErr := vmHWM(c.cmd.Process.Pid)
	c.rss = kib / 1024
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", c.cmd.Path, err, c.out.String())
		}
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		err := <-done
		return fmt.Errorf("%s did not stop within 30s of SIGTERM, killed: %w\n%s", c.cmd.Path, err, c.out.String())
	}
	if rssErr != nil && !errors.Is(rssErr, os.ErrNotExist) { // no /proc: RSS stays unmeasured
		return rssErr
	}
	return nil
}

// cpuMicros is the child's user+system CPU per message, start-up included.
func (c *child) cpuMicros(n int) float64 {
	ps := c.cmd.ProcessState
	return (ps.UserTime() + ps.SystemTime()).Seconds() * 1e6 / float64(n)
}

// selfCPU is this process's user+system CPU so far; in-process cases take the difference.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// vmHWM reads VmHWM (peak resident set size) of process pid, in KiB.
func vmHWM(pid int) (float64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib float64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), "kB"), &kib); err != nil {
				return 0, fmt.Errorf("/proc/%d/status: VmHWM %q: %w", pid, v, err)
			}
			return kib, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// waitCtx waits for ch until ctx ends or timeout passes.
func waitCtx(ctx context.Context, ch <-chan struct{}, timeout time.Duration) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(timeout):
		return errors.New("timed out")
	}
}
