// Package bridgekafka_test runs the bridge-kafka service end to end: the bridge-kafka binary as a
// separate process configured only by its environment, the development broker in-process, and a
// real Apache Kafka (the harness's, or one the test owns so that it can stop it).
package bridgekafka_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// binary is the bridge-kafka executable built once for the package's tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bridgekafka-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "bridge-kafka")
	build := exec.Command("go", "build", "-o", binary, "github.com/danube-messaging/danube-connect-go/services/bridge-kafka")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building bridge-kafka:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
