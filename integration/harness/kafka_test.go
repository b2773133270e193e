package harness

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestKafkaImageMatchesItservers keeps the container's Kafka release (GitHub
// CI) and the one tools/itservers/itservers.sh fetches from Maven Central
// (this project's CI) the same, so both runs test one broker version.
func TestKafkaImageMatchesItservers(t *testing.T) {
	b, err := os.ReadFile("../../tools/itservers/itservers.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^KAFKA_ARTIFACT=org\.apache\.kafka:kafka_2\.13:(\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("itservers.sh has no KAFKA_ARTIFACT=org.apache.kafka:kafka_2.13:VERSION line")
	}
	if tag := KafkaImage[strings.LastIndex(KafkaImage, ":")+1:]; tag != string(m[1]) {
		t.Errorf("KafkaImage %s runs Kafka %s, itservers.sh fetches %s; keep them equal", KafkaImage, tag, m[1])
	}
}
