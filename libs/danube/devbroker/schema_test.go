package devbroker

import (
	"encoding/json"
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
	spb "github.com/danube-messaging/danube-connect-go/proto/schemapb"
)

const userV1 = `{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}`

func TestSchemaRegistry(t *testing.T) {
	e := startEnv(t, fastConfig())
	reg := func(subject, typ, def string) (*spb.RegisterSchemaResponse, error) {
		return e.reg.RegisterSchema(ctx(t), &spb.RegisterSchemaRequest{Subject: subject, SchemaType: typ, SchemaDefinition: []byte(def), CreatedBy: "test"})
	}
	r1, err := reg("users", "json_schema", userV1)
	if err != nil || r1.GetVersion() != 1 || !r1.GetIsNewVersion() || r1.GetSchemaId() == 0 || len(r1.GetFingerprint()) != len("sha256:")+64 {
		t.Fatalf("register v1 = %v, %v", r1, err)
	}
	// Same schema with different key order: same fingerprint, not a new version.
	same, err := reg("users", "json", `{"required":["id"],"properties":{"id":{"type":"integer"}},"type":"object"}`)
	if err != nil || same.GetIsNewVersion() || same.GetVersion() != 1 || same.GetSchemaId() != r1.GetSchemaId() {
		t.Fatalf("re-register = %v, %v", same, err)
	}
	// Backward compatible: optional field added.
	r2, err := reg("users", "json_schema", `{"type":"object","properties":{"id":{"type":"integer"},"name":{"type":"string"}},"required":["id"]}`)
	if err != nil || r2.GetVersion() != 2 || r2.GetSchemaId() != r1.GetSchemaId() {
		t.Fatalf("register v2 = %v, %v", r2, err)
	}
	// Not backward compatible (danube-schema rules): a required field disappears.
	_, err = reg("users", "json_schema", `{"type":"object","properties":{"name":{"type":"string"}}}`)
	wantCode(t, err, codes.Internal, "Failed to register schema: Schema is not compatible with subject 'users' (mode: Backward): Backward incompatible: removed required field 'id'")
	_, err = reg("other", "xml", "<a/>")
	wantCode(t, err, codes.Internal, "Failed to register schema: Unknown schema type: xml")
	_, err = reg("other", "json_schema", "{not json")
	wantCode(t, err, codes.Internal, "")
	cc, err := e.reg.CheckCompatibility(ctx(t), &spb.CheckCompatibilityRequest{Subject: "users", SchemaType: "json_schema",
		NewSchemaDefinition: []byte(`{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}`)})
	if err != nil || cc.GetIsCompatible() || len(cc.GetErrors()) != 1 || cc.GetErrors()[0] != "Backward incompatible: changed type of field 'id'" {
		t.Fatalf("CheckCompatibility = %v, %v", cc, err)
	}
	_, err = e.reg.CheckCompatibility(ctx(t), &spb.CheckCompatibilityRequest{Subject: "nope", SchemaType: "json_schema", NewSchemaDefinition: []byte(`{}`)})
	wantCode(t, err, codes.Internal, "Failed to check compatibility: subject nope not found")
	str, err := reg("plain", "string", "")
	if err != nil || str.GetFingerprint() != "string" || str.GetSchemaId() == r1.GetSchemaId() {
		t.Fatalf("string schema = %v, %v", str, err)
	}

	latest, err := e.reg.GetLatestSchema(ctx(t), &spb.GetLatestSchemaRequest{Subject: "users"})
	if err != nil || latest.GetVersion() != 2 || latest.GetSchemaType() != "json_schema" || latest.GetCompatibilityMode() != "backward" {
		t.Fatalf("latest = %v, %v", latest, err)
	}
	var env map[string]map[string]string
	if err := json.Unmarshal(latest.GetSchemaDefinition(), &env); err != nil || env["JsonSchema"]["fingerprint"] != r2.GetFingerprint() ||
		env["JsonSchema"]["raw_schema"] == "" {
		t.Fatalf("schema_definition envelope %s (%v)", latest.GetSchemaDefinition(), err)
	}
	v1 := uint32(1)
	got, err := e.reg.GetSchema(ctx(t), &spb.GetSchemaRequest{SchemaId: r1.GetSchemaId(), Version: &v1})
	if err != nil || got.GetVersion() != 1 || got.GetSubject() != "users" || got.GetCreatedBy() != "test" {
		t.Fatalf("GetSchema v1 = %v, %v", got, err)
	}
	sget, _ := e.reg.GetLatestSchema(ctx(t), &spb.GetLatestSchemaRequest{Subject: "plain"})
	if string(sget.GetSchemaDefinition()) != `"String"` {
		t.Fatalf("string envelope %s", sget.GetSchemaDefinition())
	}

	notFound := []struct {
		name string
		call func() error
	}{
		{"GetSchema", func() error { _, err := e.reg.GetSchema(ctx(t), &spb.GetSchemaRequest{SchemaId: 999}); return err }},
		{"GetLatestSchema", func() error {
			_, err := e.reg.GetLatestSchema(ctx(t), &spb.GetLatestSchemaRequest{Subject: "nope"})
			return err
		}},
		{"ListVersions", func() error {
			_, err := e.reg.ListVersions(ctx(t), &spb.ListVersionsRequest{Subject: "nope"})
			return err
		}},
		{"ConfigureTopicSchema unknown topic", func() error {
			_, err := e.reg.ConfigureTopicSchema(ctx(t), &spb.ConfigureTopicSchemaRequest{TopicName: "/default/none", SchemaSubject: "users", ValidationPolicy: "warn"})
			return err
		}},
	}
	for _, tc := range notFound {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.call(), codes.NotFound, "") })
	}
	_, err = e.reg.SetCompatibilityMode(ctx(t), &spb.SetCompatibilityModeRequest{Subject: "users", CompatibilityMode: "sideways"})
	wantCode(t, err, codes.InvalidArgument, "Invalid compatibility mode: sideways")
	if _, err := e.reg.SetCompatibilityMode(ctx(t), &spb.SetCompatibilityModeRequest{Subject: "users", CompatibilityMode: "NONE"}); err != nil {
		t.Fatal(err)
	}
	vs, err := e.reg.ListVersions(ctx(t), &spb.ListVersionsRequest{Subject: "users"})
	if err != nil || len(vs.GetVersions()) != 2 {
		t.Fatalf("versions %v %v", vs, err)
	}
	subs, err := e.reg.ListSubjects(ctx(t), &spb.ListSubjectsRequest{})
	if err != nil || len(subs.GetSubjects()) != 2 || subs.GetSubjects()[1].GetSubject() != "users" || subs.GetSubjects()[1].GetCompatibilityMode() != "none" {
		t.Fatalf("subjects %v %v", subs, err)
	}
}

func TestTopicSchemaBindingAndValidation(t *testing.T) {
	e := startEnv(t, fastConfig())
	r, err := e.reg.RegisterSchema(ctx(t), &spb.RegisterSchemaRequest{Subject: "users", SchemaType: "json_schema", SchemaDefinition: []byte(userV1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.RegisterSchema(ctx(t), &spb.RegisterSchemaRequest{Subject: "other", SchemaType: "string"}); err != nil {
		t.Fatal(err)
	}
	const topic = "/default/typed"
	pr, err := e.prod.CreateProducer(ctx(t), &pb.ProducerRequest{TopicName: topic, ProducerName: "p", SchemaRef: &pb.SchemaReference{Subject: "users"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.prod.CreateProducer(ctx(t), &pb.ProducerRequest{TopicName: topic, ProducerName: "q", SchemaRef: &pb.SchemaReference{Subject: "other"}})
	wantCode(t, err, codes.FailedPrecondition, "Topic '/default/typed' uses schema subject 'users', cannot use 'other'. Only admin can change topic schema.")

	cfg, err := e.reg.GetTopicSchemaConfig(ctx(t), &spb.GetTopicSchemaConfigRequest{TopicName: topic})
	if err != nil || cfg.GetSchemaSubject() != "users" || cfg.GetValidationPolicy() != "warn" || cfg.GetSchemaId() != r.GetSchemaId() {
		t.Fatalf("topic config %v %v", cfg, err)
	}
	_, err = e.reg.UpdateTopicValidationPolicy(ctx(t), &spb.UpdateTopicValidationPolicyRequest{TopicName: topic, ValidationPolicy: "strict"})
	wantCode(t, err, codes.InvalidArgument, "Invalid validation policy: 'strict'. Must be 'none', 'warn', or 'enforce'")
	up, err := e.reg.UpdateTopicValidationPolicy(ctx(t), &spb.UpdateTopicValidationPolicyRequest{TopicName: topic, ValidationPolicy: "ENFORCE", EnablePayloadValidation: true})
	if err != nil || up.GetMessage() != "Validation policy updated to 'Enforce', payload validation enabled" {
		t.Fatalf("update = %v, %v", up, err)
	}
	e.producer("/default/untyped", "p", nonReliable)
	_, err = e.reg.UpdateTopicValidationPolicy(ctx(t), &spb.UpdateTopicValidationPolicyRequest{TopicName: "/default/untyped", ValidationPolicy: "enforce"})
	wantCode(t, err, codes.FailedPrecondition, "Topic '/default/untyped' has no schema subject configured. Use ConfigureTopicSchema first.")

	sid, wrong := r.GetSchemaId(), r.GetSchemaId()+100
	tests := []struct {
		name    string
		id      *uint64
		payload string
		code    codes.Code
		msg     string
	}{
		{"valid", &sid, `{"id":1}`, codes.OK, ""},
		{"missing schema_id", nil, `{"id":1}`, codes.PermissionDenied, "Unable to publish the message: schema validation failed: message has no schema_id"},
		{"foreign schema_id", &wrong, `{"id":1}`, codes.PermissionDenied, "Unable to publish the message: schema validation failed: schema_id 101 does not belong to subject users"},
		{"payload misses required", &sid, `{"name":"x"}`, codes.PermissionDenied, `Unable to publish the message: schema validation failed: payload misses required field "id"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.prod.SendMessage(ctx(t), &pb.StreamMessage{MsgId: &pb.MsgID{ProducerId: pr.GetProducerId(), TopicName: topic}, Payload: []byte(tc.payload), SchemaId: tc.id})
			wantCode(t, err, tc.code, tc.msg)
		})
	}
}

func TestConfigureTopicSchema(t *testing.T) {
	e := startEnv(t, fastConfig())
	e.producer("/default/cfg", "p", nonReliable)
	if _, err := e.reg.RegisterSchema(ctx(t), &spb.RegisterSchemaRequest{Subject: "s1", SchemaType: "string", SchemaDefinition: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  *spb.ConfigureTopicSchemaRequest
		code codes.Code
		msg  string
	}{
		{"bad policy", &spb.ConfigureTopicSchemaRequest{TopicName: "/default/cfg", SchemaSubject: "s1", ValidationPolicy: "loud"},
			codes.InvalidArgument, "Invalid validation policy: 'loud'. Must be 'none', 'warn', or 'enforce'"},
		{"unknown subject", &spb.ConfigureTopicSchemaRequest{TopicName: "/default/cfg", SchemaSubject: "nope", ValidationPolicy: "warn"},
			codes.NotFound, "Schema subject 'nope' not found in registry: subject does not exist"},
		{"unknown topic", &spb.ConfigureTopicSchemaRequest{TopicName: "/default/none", SchemaSubject: "s1", ValidationPolicy: "warn"},
			codes.NotFound, "Topic '/default/none' not found on this broker"},
		{"ok", &spb.ConfigureTopicSchemaRequest{TopicName: "/default/cfg", SchemaSubject: "s1", ValidationPolicy: "Enforce", EnablePayloadValidation: true}, codes.OK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := e.reg.ConfigureTopicSchema(ctx(t), tc.req)
			wantCode(t, err, tc.code, tc.msg)
			if err == nil && (!r.GetSuccess() || r.GetMessage() != "Topic '/default/cfg' configured with schema 's1', validation policy 'Enforce', payload validation enabled") {
				t.Fatalf("response %v", r)
			}
		})
	}
	cfg, err := e.reg.GetTopicSchemaConfig(ctx(t), &spb.GetTopicSchemaConfigRequest{TopicName: "/default/cfg"})
	if err != nil || cfg.GetSchemaSubject() != "s1" || cfg.GetValidationPolicy() != "enforce" || !cfg.GetEnablePayloadValidation() {
		t.Fatalf("config %v %v", cfg, err)
	}
	// Admin override: a producer bringing another subject is now rejected.
	_, err = e.prod.CreateProducer(ctx(t), &pb.ProducerRequest{TopicName: "/default/cfg", ProducerName: "q", SchemaRef: &pb.SchemaReference{Subject: "users"}})
	wantCode(t, err, codes.FailedPrecondition, "Topic '/default/cfg' uses schema subject 's1', cannot use 'users'. Only admin can change topic schema.")
}
