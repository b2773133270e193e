package danube

import (
	"errors"
	"strings"
	"unicode"
)

// CheckTopic applies the broker's topic rule — /namespace/topic, each part made of letters,
// digits, '_' and '-' — so that configuration can name a bad topic before anything is sent (the
// broker itself answers INVALID_ARGUMENT, or accepts "/default/" and fails later).
func CheckTopic(name string) error {
	parts := strings.Split(name, "/")
	if len(parts) != 3 || parts[0] != "" || parts[1] == "" || parts[2] == "" {
		return errors.New("want /namespace/topic")
	}
	for _, p := range parts[1:] {
		for _, r := range p {
			if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-') {
				return errors.New("only letters, digits, '_' and '-' are allowed in a topic name")
			}
		}
	}
	return nil
}
