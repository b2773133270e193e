// Package class is the runtime's failure classes as its engines see them, in the order of
// runtime.Class: the runtime classifies a connector's error (runtime.ClassOf) and hands the
// engines the number.
package class

import "strconv"

// Class is what an engine does with a failure (see runtime.Class).
type Class uint8

// Failure classes (see runtime.Class).
const (
	Retryable Class = iota
	InvalidData
	Fatal
	Disconnected
)

var names = [...]string{"retryable", "invalid_data", "fatal", "disconnected"}

// String is the class's name in metrics and logs.
func (c Class) String() string {
	if int(c) < len(names) {
		return names[c]
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}
