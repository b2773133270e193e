package config

import (
	"fmt"
	"strconv"
	"time"
)

// Millis is a duration configured as an integer number of milliseconds (the *_MS variables), because
// that is what the deployment manifests use. Its zero value is zero.
type Millis time.Duration

// D returns the duration.
func (m Millis) D() time.Duration { return time.Duration(m) }

// String prints the value as the integer the variable takes.
func (m Millis) String() string { return strconv.FormatInt(time.Duration(m).Milliseconds(), 10) }

// UnmarshalText parses a non-negative integer number of milliseconds.
func (m *Millis) UnmarshalText(b []byte) error {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("want a non-negative integer number of milliseconds")
	}
	*m = Millis(time.Duration(n) * time.Millisecond)
	return nil
}
