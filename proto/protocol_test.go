// Package proto_test checks that the generated descriptors match the Danube v0.15 wire contract
// (the tables in appendix_test.go; see docs/danube-protocol.md), so that a wrong field number,
// type, label or enum value fails the build.
package proto_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/danube-messaging/danube-connect-go/proto/adminpb"
	_ "github.com/danube-messaging/danube-connect-go/proto/danubepb"
	_ "github.com/danube-messaging/danube-connect-go/proto/schemapb"
)

type protoFile struct {
	file, pkg string
	services  []service
	enums     []enum
	messages  []message
}

type service struct {
	name string
	rpcs []rpc
}

type rpc struct{ name, request, response, streaming string }

type enum struct {
	name   string // relative to the package, e.g. "ConsumerRequest.SubscriptionType"
	values []enumValue
}

type enumValue struct {
	name   string
	number int32
}

type message struct {
	name   string
	fields []field
}

type field struct {
	number     int32
	label, typ string // as written in appendix_test.go: "", "repeated", "optional", "oneof x"; "uint64", "MsgID", "X (enum)", "map<k,v>"
	name       string
}

func TestDescriptorsMatchAppendix(t *testing.T) {
	for _, pf := range appendix {
		t.Run(pf.file, func(t *testing.T) {
			fd, err := protoregistry.GlobalFiles.FindFileByPath(pf.file)
			if err != nil {
				t.Fatalf("file %s is not registered: %v", pf.file, err)
			}
			if got := string(fd.Package()); got != pf.pkg {
				t.Fatalf("package = %q, want %q", got, pf.pkg)
			}
			checkServices(t, fd, pf)
			checkEnums(t, fd, pf)
			checkMessages(t, fd, pf)
		})
	}
}

func checkServices(t *testing.T, fd protoreflect.FileDescriptor, pf protoFile) {
	t.Helper()
	if got, want := fd.Services().Len(), len(pf.services); got != want {
		t.Errorf("%d services, want %d", got, want)
	}
	for _, s := range pf.services {
		sd := fd.Services().ByName(protoreflect.Name(s.name))
		if sd == nil {
			t.Errorf("service %s missing", s.name)
			continue
		}
		if got, want := sd.Methods().Len(), len(s.rpcs); got != want {
			t.Errorf("service %s: %d rpcs, want %d", s.name, got, want)
		}
		for _, r := range s.rpcs {
			md := sd.Methods().ByName(protoreflect.Name(r.name))
			if md == nil {
				t.Errorf("rpc %s.%s missing", s.name, r.name)
				continue
			}
			if got := string(md.Input().Name()); got != r.request {
				t.Errorf("rpc %s.%s request = %s, want %s", s.name, r.name, got, r.request)
			}
			if got := string(md.Output().Name()); got != r.response {
				t.Errorf("rpc %s.%s response = %s, want %s", s.name, r.name, got, r.response)
			}
			if got := streaming(md); got != r.streaming {
				t.Errorf("rpc %s.%s streaming = %q, want %q", s.name, r.name, got, r.streaming)
			}
		}
	}
}

func streaming(md protoreflect.MethodDescriptor) string {
	switch {
	case md.IsStreamingClient() && md.IsStreamingServer():
		return "bidirectional"
	case md.IsStreamingServer():
		return "server-streaming"
	case md.IsStreamingClient():
		return "client-streaming"
	}
	return "none (unary)"
}

func checkEnums(t *testing.T, fd protoreflect.FileDescriptor, pf protoFile) {
	t.Helper()
	for _, e := range pf.enums {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(pf.pkg + "." + e.name))
		if err != nil {
			t.Errorf("enum %s missing: %v", e.name, err)
			continue
		}
		ed, ok := d.(protoreflect.EnumDescriptor)
		if !ok {
			t.Errorf("%s is not an enum", e.name)
			continue
		}
		if got, want := ed.Values().Len(), len(e.values); got != want {
			t.Errorf("enum %s: %d values, want %d", e.name, got, want)
		}
		for _, v := range e.values {
			vd := ed.Values().ByName(protoreflect.Name(v.name))
			if vd == nil {
				t.Errorf("enum %s: value %s missing", e.name, v.name)
			} else if got := int32(vd.Number()); got != v.number {
				t.Errorf("enum %s: %s = %d, want %d", e.name, v.name, got, v.number)
			}
		}
	}
}

func checkMessages(t *testing.T, fd protoreflect.FileDescriptor, pf protoFile) {
	t.Helper()
	want := map[string]bool{}
	for _, m := range pf.messages {
		want[m.name] = true
		md := fd.Messages().ByName(protoreflect.Name(m.name))
		if md == nil {
			t.Errorf("message %s missing", m.name)
			continue
		}
		if got, want := md.Fields().Len(), len(m.fields); got != want {
			t.Errorf("message %s: %d fields, want %d", m.name, got, want)
		}
		for _, f := range m.fields {
			fdsc := md.Fields().ByNumber(protoreflect.FieldNumber(f.number))
			if fdsc == nil {
				t.Errorf("%s: field number %d (%s) missing", m.name, f.number, f.name)
				continue
			}
			if got := string(fdsc.Name()); got != f.name {
				t.Errorf("%s: field %d is %s, want %s", m.name, f.number, got, f.name)
			}
			if got := typeOf(fdsc); got != f.typ {
				t.Errorf("%s.%s: type %s, want %s", m.name, f.name, got, f.typ)
			}
			if got := labelOf(fdsc); got != f.label {
				t.Errorf("%s.%s: label %q, want %q", m.name, f.name, got, f.label)
			}
		}
	}
	// No top-level message beyond the contract: an extra one would mean a typo'd name.
	for i := 0; i < fd.Messages().Len(); i++ {
		if name := string(fd.Messages().Get(i).Name()); !want[name] {
			t.Errorf("message %s is not in the contract", name)
		}
	}
}

// typeOf spells a field's type the way appendix_test.go does.
func typeOf(f protoreflect.FieldDescriptor) string {
	if f.IsMap() {
		return fmt.Sprintf("map<%s,%s>", typeOf(f.MapKey()), typeOf(f.MapValue()))
	}
	switch f.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return relName(f.Message().FullName(), f.ParentFile().Package())
	case protoreflect.EnumKind:
		return relName(f.Enum().FullName(), f.ParentFile().Package()) + " (enum)"
	}
	return f.Kind().String()
}

func relName(full, pkg protoreflect.FullName) string {
	return strings.TrimPrefix(string(full), string(pkg)+".")
}

func labelOf(f protoreflect.FieldDescriptor) string {
	switch {
	case f.IsList():
		return "repeated"
	case f.HasOptionalKeyword():
		return "optional"
	case f.ContainingOneof() != nil:
		return "oneof " + string(f.ContainingOneof().Name())
	}
	return ""
}

// The wire contract requires field 4 of MsgID to stay unused (segment_id was removed upstream;
// see docs/danube-protocol.md).
func TestMsgIDReservesRemovedField(t *testing.T) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName("danube.MsgID")
	if err != nil {
		t.Fatal(err)
	}
	md := d.(protoreflect.MessageDescriptor)
	if !md.ReservedRanges().Has(4) {
		t.Error("MsgID does not reserve field number 4")
	}
	if !md.ReservedNames().Has("segment_id") {
		t.Error("MsgID does not reserve the name segment_id")
	}
}
