package mapping

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParse(t *testing.T) {
	var im Imports
	if err := im.UnmarshalText([]byte(" orders=/default/orders ; payments=/default/payments;")); err != nil {
		t.Fatal(err)
	}
	if im.String() != "orders=/default/orders;payments=/default/payments" {
		t.Errorf("imports %q", im.String())
	}
	var ex Exports
	if err := ex.UnmarshalText([]byte("/default/shipments=shipments")); err != nil || ex.Routes[0] != (Route{Kafka: "shipments", Danube: "/default/shipments"}) {
		t.Errorf("exports %+v, %v", ex.Routes, err)
	}
	for in, want := range map[string]string{
		"orders":                    `"orders": want kafka-topic=/namespace/topic`,
		"a b=/default/x":            `"a b=/default/x": Kafka topic "a b": character ' ' not allowed (letters, digits, '.', '_', '-')`,
		"a=/default/x;a=/default/y": `"a=/default/y": Kafka topic "a" is imported twice`,
		"a=/default/x;b=/default/x": `"b=/default/x": Danube topic "/default/x" has two imports`,
		"a=default/x":               `"a=default/x": Danube topic "default/x": want /namespace/topic`,
	} {
		var m Imports
		if err := m.UnmarshalText([]byte(in)); err == nil || err.Error() != want {
			t.Errorf("%q: got %v, want %s", in, err, want)
		}
	}
	if err := ex.UnmarshalText([]byte("/d/x=a;/d/x=b")); err == nil || err.Error() != `"/d/x=b": Danube topic "/d/x" is exported twice` {
		t.Errorf("duplicate export: %v", err)
	}
}
