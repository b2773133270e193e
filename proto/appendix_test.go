// The expected wire contract: services, rpcs, messages, fields and enums of Danube v0.15.1, transcribed
// from the upstream .proto files (see docs/danube-protocol.md).

package proto_test

var appendix = []protoFile{
	{
		file: "DanubeApi.proto", pkg: "danube",
		services: []service{
			{"ProducerService", []rpc{
				{"CreateProducer", "ProducerRequest", "ProducerResponse", "none (unary)"},
				{"SendMessage", "StreamMessage", "MessageResponse", "none (unary)"},
			}},
			{"ConsumerService", []rpc{
				{"Subscribe", "ConsumerRequest", "ConsumerResponse", "none (unary)"},
				{"ReceiveMessages", "ReceiveRequest", "StreamMessage", "server-streaming"},
				{"Ack", "AckRequest", "AckResponse", "none (unary)"},
				{"Nack", "NackRequest", "NackResponse", "none (unary)"},
			}},
			{"Discovery", []rpc{
				{"TopicLookup", "TopicLookupRequest", "TopicLookupResponse", "none (unary)"},
				{"TopicPartitions", "TopicLookupRequest", "TopicPartitionsResponse", "none (unary)"},
			}},
			{"HealthCheck", []rpc{
				{"HealthCheck", "HealthCheckRequest", "HealthCheckResponse", "none (unary)"},
			}},
			{"StorageService", []rpc{
				{"ListSegmentDescriptors", "ListSegmentDescriptorsRequest", "ListSegmentDescriptorsResponse", "none (unary)"},
			}},
		},
		enums: []enum{
			{"ProducerAccessMode", []enumValue{{"Shared", 0}, {"Exclusive", 1}}},
			{"DispatchStrategy", []enumValue{{"NonReliable", 0}, {"Reliable", 1}}},
			{"ConsumerRequest.SubscriptionType", []enumValue{{"Exclusive", 0}, {"Shared", 1}, {"Failover", 2}, {"KeyShared", 3}}},
			{"TopicLookupResponse.LookupType", []enumValue{{"Redirect", 0}, {"Connect", 1}, {"Failed", 2}}},
			{"HealthCheckRequest.ClientType", []enumValue{{"Producer", 0}, {"Consumer", 1}}},
			{"HealthCheckResponse.ClientStatus", []enumValue{{"OK", 0}, {"CLOSE", 1}}},
		},
		messages: []message{
			{"ProducerRequest", []field{
				{1, "", "uint64", "request_id"},
				{2, "", "string", "producer_name"},
				{3, "", "string", "topic_name"},
				{4, "", "SchemaReference", "schema_ref"},
				{5, "", "ProducerAccessMode (enum)", "producer_access_mode"},
				{6, "", "DispatchStrategy (enum)", "dispatch_strategy"},
			}},
			{"SchemaReference", []field{
				{1, "", "string", "subject"},
				{2, "oneof version_ref", "bool", "use_latest"},
				{3, "oneof version_ref", "uint32", "pinned_version"},
				{4, "oneof version_ref", "uint32", "min_version"},
			}},
			{"ProducerResponse", []field{
				{1, "", "uint64", "request_id"},
				{2, "", "uint64", "producer_id"},
				{3, "", "string", "producer_name"},
			}},
			{"MessageResponse", []field{
				{1, "", "uint64", "request_id"},
			}},
			{"ConsumerRequest", []field{
				{1, "", "uint64", "request_id"},
				{2, "", "string", "topic_name"},
				{3, "", "string", "consumer_name"},
				{4, "", "string", "subscription"},
				{5, "", "ConsumerRequest.SubscriptionType (enum)", "subscription_type"},
				{6, "repeated", "string", "key_filters"},
			}},
			{"ConsumerResponse", []field{
				{1, "", "uint64", "request_id"},
				{2, "", "uint64", "consumer_id"},
				{3, "", "string", "consumer_name"},
			}},
			{"ReceiveRequest", []field{
				{1, "", "uint64", "request_id"},
				{2, "", "uint64", "consumer_id"},
			}},
			{"StreamMessage", []field{
				{1, "", "uint64", "request_id"},
				{2, "", "MsgID", "msg_id"},
				{3, "", "bytes", "payload"},
				{4, "", "uint64", "publish_time"},
				{5, "", "string", "producer_name"},
				{6, "", "string", "subscription_name"},
				{7, "", "map<string,string>", "attributes"},
				{8, "optional", "uint64", "schema_id"},
				{9, "optional", "uint32", "schema_version"},
				{10, "optional", "string", "routing_key"},
			}},
			{"MsgID", []field{
				{1, "", "uint64", "producer_id"},
				{2, "", "string", "topic_name"},
				{3, "", "string", "broker_addr"},
				{5, "", "uint64", "topic_offset"},
			}},
			{"AckRequest", []field{
				{1, "", "uint64", "request_id"},
				{2, "", "MsgID", "msg_id"},
				{3, "", "string", "subscription_name"},
			}},
			{"AckResponse", []field{
				{1, "", "uint64", "request_id"},
			}},
			{"NackRequest", []field{
				{1, "", "uint64", "request_id"},
				{2, "", "MsgID", "msg_id"},
				{3, "", "string", "subscription_name"},
				{4, "optional", "uint64", "delay_ms"},
				{5, "optional", "string", "reason"},
			}},
			{"NackResponse", []field{
				{1, "", "uint64", "request_id"},
			}},
			{"TopicLookupRequest", []field{
				{1, "", "uint64", "request_id"},
				{2, "", "string", "topic"},
			}},
			{"TopicLookupResponse", []field{
				{3, "", "uint64", "request_id"},
				{4, "", "TopicLookupResponse.LookupType (enum)", "response_type"},
				{5, "", "string", "connect_url"},
				{6, "", "string", "broker_url"},
				{7, "", "bool", "proxy"},
			}},
			{"TopicPartitionsResponse", []field{
				{1, "", "uint64", "request_id"},
				{2, "repeated", "string", "partitions"},
			}},
			{"HealthCheckRequest", []field{
				{1, "", "uint64", "request_id"},
				{2, "", "HealthCheckRequest.ClientType (enum)", "client"},
				{3, "", "uint64", "id"},
			}},
			{"HealthCheckResponse", []field{
				{1, "", "HealthCheckResponse.ClientStatus (enum)", "status"},
			}},
			{"ListSegmentDescriptorsRequest", []field{
				{1, "", "string", "topic"},
				{2, "", "uint64", "after_offset"},
			}},
			{"ListSegmentDescriptorsResponse", []field{
				{1, "repeated", "SegmentDescriptorProto", "segments"},
			}},
			{"SegmentDescriptorProto", []field{
				{1, "", "string", "segment_id"},
				{2, "", "uint64", "start_offset"},
				{3, "", "uint64", "end_offset"},
				{4, "", "uint64", "size"},
				{5, "", "string", "etag"},
				{6, "", "uint64", "created_at"},
			}},
		},
	},
	{
		file: "SchemaRegistry.proto", pkg: "danube_schema",
		services: []service{
			{"SchemaRegistry", []rpc{
				{"RegisterSchema", "RegisterSchemaRequest", "RegisterSchemaResponse", "none (unary)"},
				{"GetSchema", "GetSchemaRequest", "GetSchemaResponse", "none (unary)"},
				{"GetLatestSchema", "GetLatestSchemaRequest", "GetSchemaResponse", "none (unary)"},
				{"ListVersions", "ListVersionsRequest", "ListVersionsResponse", "none (unary)"},
				{"CheckCompatibility", "CheckCompatibilityRequest", "CheckCompatibilityResponse", "none (unary)"},
				{"DeleteSchemaVersion", "DeleteSchemaVersionRequest", "DeleteSchemaVersionResponse", "none (unary)"},
				{"SetCompatibilityMode", "SetCompatibilityModeRequest", "SetCompatibilityModeResponse", "none (unary)"},
				{"ConfigureTopicSchema", "ConfigureTopicSchemaRequest", "ConfigureTopicSchemaResponse", "none (unary)"},
				{"UpdateTopicValidationPolicy", "UpdateTopicValidationPolicyRequest", "UpdateTopicValidationPolicyResponse", "none (unary)"},
				{"GetTopicSchemaConfig", "GetTopicSchemaConfigRequest", "GetTopicSchemaConfigResponse", "none (unary)"},
				{"ListSubjects", "ListSubjectsRequest", "ListSubjectsResponse", "none (unary)"},
			}},
		},
		enums: []enum{},
		messages: []message{
			{"RegisterSchemaRequest", []field{
				{1, "", "string", "subject"},
				{2, "", "string", "schema_type"},
				{3, "", "bytes", "schema_definition"},
				{4, "", "string", "description"},
				{5, "", "string", "created_by"},
				{6, "repeated", "string", "tags"},
			}},
			{"RegisterSchemaResponse", []field{
				{1, "", "uint64", "schema_id"},
				{2, "", "uint32", "version"},
				{3, "", "bool", "is_new_version"},
				{4, "", "string", "fingerprint"},
			}},
			{"GetSchemaRequest", []field{
				{1, "", "uint64", "schema_id"},
				{2, "optional", "uint32", "version"},
			}},
			{"GetSchemaResponse", []field{
				{1, "", "uint64", "schema_id"},
				{2, "", "uint32", "version"},
				{3, "", "string", "subject"},
				{4, "", "string", "schema_type"},
				{5, "", "bytes", "schema_definition"},
				{6, "", "string", "description"},
				{7, "", "uint64", "created_at"},
				{8, "", "string", "created_by"},
				{9, "repeated", "string", "tags"},
				{10, "", "string", "fingerprint"},
				{11, "", "string", "compatibility_mode"},
			}},
			{"GetLatestSchemaRequest", []field{
				{1, "", "string", "subject"},
			}},
			{"ListVersionsRequest", []field{
				{1, "", "string", "subject"},
			}},
			{"ListVersionsResponse", []field{
				{1, "repeated", "SchemaVersionInfo", "versions"},
			}},
			{"SchemaVersionInfo", []field{
				{1, "", "uint32", "version"},
				{2, "", "uint64", "created_at"},
				{3, "", "string", "created_by"},
				{4, "", "string", "description"},
				{5, "", "string", "fingerprint"},
				{6, "", "uint64", "schema_id"},
			}},
			{"CheckCompatibilityRequest", []field{
				{1, "", "string", "subject"},
				{2, "", "bytes", "new_schema_definition"},
				{3, "", "string", "schema_type"},
				{4, "optional", "string", "compatibility_mode"},
			}},
			{"CheckCompatibilityResponse", []field{
				{1, "", "bool", "is_compatible"},
				{2, "repeated", "string", "errors"},
			}},
			{"DeleteSchemaVersionRequest", []field{
				{1, "", "string", "subject"},
				{2, "", "uint32", "version"},
			}},
			{"DeleteSchemaVersionResponse", []field{
				{1, "", "bool", "success"},
				{2, "", "string", "message"},
			}},
			{"SetCompatibilityModeRequest", []field{
				{1, "", "string", "subject"},
				{2, "", "string", "compatibility_mode"},
			}},
			{"SetCompatibilityModeResponse", []field{
				{1, "", "bool", "success"},
				{2, "", "string", "message"},
			}},
			{"ConfigureTopicSchemaRequest", []field{
				{1, "", "string", "topic_name"},
				{2, "", "string", "schema_subject"},
				{3, "", "string", "validation_policy"},
				{4, "", "bool", "enable_payload_validation"},
			}},
			{"ConfigureTopicSchemaResponse", []field{
				{1, "", "bool", "success"},
				{2, "", "string", "message"},
			}},
			{"UpdateTopicValidationPolicyRequest", []field{
				{1, "", "string", "topic_name"},
				{2, "", "string", "validation_policy"},
				{3, "", "bool", "enable_payload_validation"},
			}},
			{"UpdateTopicValidationPolicyResponse", []field{
				{1, "", "bool", "success"},
				{2, "", "string", "message"},
			}},
			{"GetTopicSchemaConfigRequest", []field{
				{1, "", "string", "topic_name"},
			}},
			{"GetTopicSchemaConfigResponse", []field{
				{1, "", "string", "schema_subject"},
				{2, "", "string", "validation_policy"},
				{3, "", "bool", "enable_payload_validation"},
				{4, "", "uint64", "schema_id"},
			}},
			{"SubjectSummary", []field{
				{1, "", "string", "subject"},
				{2, "", "string", "schema_type"},
				{3, "", "uint32", "latest_version"},
				{4, "", "string", "compatibility_mode"},
				{5, "", "uint64", "schema_id"},
				{6, "repeated", "string", "tags"},
			}},
			{"ListSubjectsResponse", []field{
				{1, "repeated", "SubjectSummary", "subjects"},
			}},
			{"ListSubjectsRequest", nil},
		},
	},
	{
		file: "DanubeAdmin.proto", pkg: "danube_admin",
		services: []service{
			{"BrokerAdmin", []rpc{
				{"ListBrokers", "Empty", "BrokerListResponse", "none (unary)"},
				{"GetLeaderBroker", "Empty", "BrokerResponse", "none (unary)"},
				{"ListNamespaces", "Empty", "NamespaceListResponse", "none (unary)"},
				{"UnloadBroker", "UnloadBrokerRequest", "UnloadBrokerResponse", "none (unary)"},
				{"ActivateBroker", "ActivateBrokerRequest", "ActivateBrokerResponse", "none (unary)"},
				{"GetClusterBalance", "ClusterBalanceRequest", "ClusterBalanceResponse", "none (unary)"},
				{"TriggerRebalance", "RebalanceRequest", "RebalanceResponse", "none (unary)"},
			}},
			{"ClusterAdmin", []rpc{
				{"ClusterStatus", "Empty", "ClusterStatusResponse", "none (unary)"},
				{"AddNode", "AddNodeRequest", "AddNodeResponse", "none (unary)"},
				{"PromoteNode", "PromoteNodeRequest", "PromoteNodeResponse", "none (unary)"},
				{"RemoveNode", "RemoveNodeRequest", "RemoveNodeResponse", "none (unary)"},
			}},
			{"NamespaceAdmin", []rpc{
				{"GetNamespaceTopics", "NamespaceRequest", "TopicListResponse", "none (unary)"},
				{"GetNamespacePolicies", "NamespaceRequest", "PolicyResponse", "none (unary)"},
				{"CreateNamespace", "NamespaceRequest", "NamespaceResponse", "none (unary)"},
				{"DeleteNamespace", "NamespaceRequest", "NamespaceResponse", "none (unary)"},
			}},
			{"TopicAdmin", []rpc{
				{"ListNamespaceTopics", "NamespaceRequest", "TopicInfoListResponse", "none (unary)"},
				{"ListBrokerTopics", "BrokerRequest", "TopicInfoListResponse", "none (unary)"},
				{"CreateTopic", "NewTopicRequest", "TopicResponse", "none (unary)"},
				{"CreatePartitionedTopic", "PartitionedTopicRequest", "TopicResponse", "none (unary)"},
				{"DeleteTopic", "TopicRequest", "TopicResponse", "none (unary)"},
				{"UnloadTopic", "TopicRequest", "TopicResponse", "none (unary)"},
				{"ListSubscriptions", "TopicRequest", "SubscriptionListResponse", "none (unary)"},
				{"Unsubscribe", "SubscriptionRequest", "SubscriptionResponse", "none (unary)"},
				{"SetSubscriptionFailurePolicy", "SetSubscriptionFailurePolicyRequest", "SubscriptionResponse", "none (unary)"},
				{"GetSubscriptionFailurePolicy", "GetSubscriptionFailurePolicyRequest", "GetSubscriptionFailurePolicyResponse", "none (unary)"},
				{"DescribeTopic", "DescribeTopicRequest", "DescribeTopicResponse", "none (unary)"},
				{"SetSubscriptionDispatchConfig", "SetSubscriptionDispatchConfigRequest", "SubscriptionResponse", "none (unary)"},
				{"GetSubscriptionDispatchConfig", "GetSubscriptionDispatchConfigRequest", "GetSubscriptionDispatchConfigResponse", "none (unary)"},
			}},
			{"SecurityAdmin", []rpc{
				{"CreateRole", "CreateRoleRequest", "CreateRoleResponse", "none (unary)"},
				{"GetRole", "GetRoleRequest", "GetRoleResponse", "none (unary)"},
				{"ListRoles", "Empty", "ListRolesResponse", "none (unary)"},
				{"DeleteRole", "DeleteRoleRequest", "DeleteRoleResponse", "none (unary)"},
				{"CreateBinding", "CreateBindingRequest", "CreateBindingResponse", "none (unary)"},
				{"GetBinding", "GetBindingRequest", "GetBindingResponse", "none (unary)"},
				{"ListBindings", "ListBindingsRequest", "ListBindingsResponse", "none (unary)"},
				{"ListAllBindings", "Empty", "ListBindingsResponse", "none (unary)"},
				{"DeleteBinding", "DeleteBindingRequest", "DeleteBindingResponse", "none (unary)"},
			}},
		},
		enums: []enum{
			{"DispatchStrategy", []enumValue{{"NonReliable", 0}, {"Reliable", 1}}},
			{"SubscriptionBackoffStrategy", []enumValue{{"Fixed", 0}, {"Exponential", 1}}},
			{"SubscriptionPoisonPolicy", []enumValue{{"DeadLetter", 0}, {"Block", 1}, {"Drop", 2}}},
		},
		messages: []message{
			{"RoleDefinition", []field{
				{1, "", "string", "name"},
				{2, "repeated", "string", "permissions"},
				{3, "", "bool", "system"},
			}},
			{"CreateRoleRequest", []field{
				{1, "", "RoleDefinition", "role"},
			}},
			{"CreateRoleResponse", []field{
				{1, "", "bool", "success"},
			}},
			{"GetRoleRequest", []field{
				{1, "", "string", "name"},
			}},
			{"GetRoleResponse", []field{
				{1, "", "RoleDefinition", "role"},
			}},
			{"ListRolesResponse", []field{
				{1, "repeated", "RoleDefinition", "roles"},
			}},
			{"DeleteRoleRequest", []field{
				{1, "", "string", "name"},
			}},
			{"DeleteRoleResponse", []field{
				{1, "", "bool", "success"},
			}},
			{"BindingDefinition", []field{
				{1, "", "string", "id"},
				{2, "", "string", "principal_type"},
				{3, "", "string", "principal_name"},
				{4, "repeated", "string", "role_names"},
				{5, "", "string", "scope"},
				{6, "", "string", "resource_name"},
			}},
			{"CreateBindingRequest", []field{
				{1, "", "BindingDefinition", "binding"},
			}},
			{"CreateBindingResponse", []field{
				{1, "", "bool", "success"},
			}},
			{"GetBindingRequest", []field{
				{1, "", "string", "scope"},
				{2, "", "string", "resource_name"},
				{3, "", "string", "binding_id"},
			}},
			{"GetBindingResponse", []field{
				{1, "", "BindingDefinition", "binding"},
			}},
			{"ListBindingsRequest", []field{
				{1, "", "string", "scope"},
				{2, "", "string", "resource_name"},
			}},
			{"ListBindingsResponse", []field{
				{1, "repeated", "BindingDefinition", "bindings"},
			}},
			{"DeleteBindingRequest", []field{
				{1, "", "string", "scope"},
				{2, "", "string", "resource_name"},
				{3, "", "string", "binding_id"},
			}},
			{"DeleteBindingResponse", []field{
				{1, "", "bool", "success"},
			}},
			{"NamespaceRequest", []field{
				{1, "", "string", "name"},
			}},
			{"NamespaceResponse", []field{
				{1, "", "bool", "success"},
			}},
			{"NewTopicRequest", []field{
				{1, "", "string", "name"},
				{2, "optional", "string", "schema_subject"},
				{3, "", "DispatchStrategy (enum)", "dispatch_strategy"},
			}},
			{"TopicRequest", []field{
				{1, "", "string", "name"},
			}},
			{"TopicResponse", []field{
				{1, "", "bool", "success"},
			}},
			{"PartitionedTopicRequest", []field{
				{1, "", "string", "base_name"},
				{2, "", "uint32", "partitions"},
				{3, "optional", "string", "schema_subject"},
				{4, "", "DispatchStrategy (enum)", "dispatch_strategy"},
			}},
			{"SubscriptionRequest", []field{
				{1, "", "string", "topic"},
				{2, "", "string", "subscription"},
			}},
			{"SubscriptionResponse", []field{
				{1, "", "bool", "success"},
			}},
			{"SubscriptionFailurePolicy", []field{
				{1, "", "uint32", "max_redelivery_count"},
				{2, "", "uint64", "ack_timeout_ms"},
				{3, "", "uint64", "base_redelivery_delay_ms"},
				{4, "", "uint64", "max_redelivery_delay_ms"},
				{5, "", "SubscriptionBackoffStrategy (enum)", "backoff_strategy"},
				{6, "optional", "string", "dead_letter_topic"},
				{7, "", "SubscriptionPoisonPolicy (enum)", "poison_policy"},
			}},
			{"SetSubscriptionFailurePolicyRequest", []field{
				{1, "", "string", "topic"},
				{2, "", "string", "subscription"},
				{3, "", "SubscriptionFailurePolicy", "failure_policy"},
			}},
			{"GetSubscriptionFailurePolicyRequest", []field{
				{1, "", "string", "topic"},
				{2, "", "string", "subscription"},
			}},
			{"GetSubscriptionFailurePolicyResponse", []field{
				{1, "optional", "SubscriptionFailurePolicy", "failure_policy"},
				{2, "", "int32", "subscription_type"},
			}},
			{"SubscriptionDispatchConfig", []field{
				{1, "", "uint32", "max_unacked_messages"},
			}},
			{"SetSubscriptionDispatchConfigRequest", []field{
				{1, "", "string", "topic"},
				{2, "", "string", "subscription"},
				{3, "", "SubscriptionDispatchConfig", "dispatch_config"},
			}},
			{"GetSubscriptionDispatchConfigRequest", []field{
				{1, "", "string", "topic"},
				{2, "", "string", "subscription"},
			}},
			{"GetSubscriptionDispatchConfigResponse", []field{
				{1, "optional", "SubscriptionDispatchConfig", "dispatch_config"},
			}},
			{"BrokerListResponse", []field{
				{1, "repeated", "BrokerInfo", "brokers"},
			}},
			{"BrokerInfo", []field{
				{1, "", "string", "broker_id"},
				{2, "", "string", "broker_addr"},
				{3, "", "string", "broker_role"},
				{4, "", "string", "admin_addr"},
				{5, "", "string", "metrics_addr"},
				{6, "", "string", "broker_status"},
			}},
			{"BrokerResponse", []field{
				{1, "", "string", "leader"},
			}},
			{"NamespaceListResponse", []field{
				{1, "repeated", "string", "namespaces"},
			}},
			{"TopicListResponse", []field{
				{1, "repeated", "string", "topics"},
			}},
			{"TopicInfo", []field{
				{1, "", "string", "name"},
				{2, "", "string", "broker_id"},
				{3, "", "string", "delivery"},
			}},
			{"TopicInfoListResponse", []field{
				{1, "repeated", "TopicInfo", "topics"},
			}},
			{"BrokerRequest", []field{
				{1, "", "string", "broker_id"},
			}},
			{"PolicyResponse", []field{
				{1, "", "string", "policies"},
			}},
			{"SubscriptionListResponse", []field{
				{1, "repeated", "string", "subscriptions"},
			}},
			{"DescribeTopicRequest", []field{
				{1, "", "string", "name"},
			}},
			{"DescribeTopicResponse", []field{
				{1, "", "string", "name"},
				{2, "repeated", "string", "subscriptions"},
				{3, "", "string", "broker_id"},
				{4, "", "string", "delivery"},
				{5, "optional", "string", "schema_subject"},
				{6, "optional", "uint64", "schema_id"},
				{7, "optional", "uint32", "schema_version"},
				{8, "optional", "string", "schema_type"},
				{9, "optional", "string", "compatibility_mode"},
			}},
			{"UnloadBrokerRequest", []field{
				{1, "", "string", "broker_id"},
				{2, "", "uint32", "max_parallel"},
				{3, "repeated", "string", "namespaces_include"},
				{4, "repeated", "string", "namespaces_exclude"},
				{5, "", "bool", "dry_run"},
				{6, "", "uint32", "timeout_seconds"},
			}},
			{"UnloadBrokerResponse", []field{
				{1, "", "bool", "started"},
				{2, "", "uint32", "total"},
				{3, "", "uint32", "succeeded"},
				{4, "", "uint32", "failed"},
				{5, "", "uint32", "pending"},
				{6, "repeated", "string", "failed_topics"},
			}},
			{"ActivateBrokerRequest", []field{
				{1, "", "string", "broker_id"},
				{2, "", "string", "reason"},
			}},
			{"ActivateBrokerResponse", []field{
				{1, "", "bool", "success"},
			}},
			{"ClusterBalanceResponse", []field{
				{1, "", "double", "coefficient_of_variation"},
				{2, "", "double", "mean_load"},
				{3, "", "double", "max_load"},
				{4, "", "double", "min_load"},
				{5, "", "double", "std_deviation"},
				{6, "", "uint32", "broker_count"},
				{7, "repeated", "BrokerLoadInfo", "brokers"},
				{8, "", "string", "assignment_strategy"},
			}},
			{"BrokerLoadInfo", []field{
				{1, "", "uint64", "broker_id"},
				{2, "", "double", "load"},
				{3, "", "uint32", "topic_count"},
				{4, "", "bool", "is_overloaded"},
				{5, "", "bool", "is_underloaded"},
			}},
			{"RebalanceRequest", []field{
				{1, "", "bool", "dry_run"},
				{2, "optional", "uint32", "max_moves"},
			}},
			{"RebalanceResponse", []field{
				{1, "", "bool", "success"},
				{2, "", "uint32", "moves_executed"},
				{3, "repeated", "ProposedMove", "proposed_moves"},
				{4, "", "string", "error_message"},
			}},
			{"ProposedMove", []field{
				{1, "", "string", "topic_name"},
				{2, "", "uint64", "from_broker"},
				{3, "", "uint64", "to_broker"},
				{4, "", "double", "estimated_load"},
				{5, "", "string", "reason"},
			}},
			{"ClusterStatusResponse", []field{
				{1, "", "uint64", "leader_id"},
				{2, "", "uint64", "current_term"},
				{3, "", "uint64", "last_applied"},
				{4, "repeated", "uint64", "voters"},
				{5, "repeated", "uint64", "learners"},
				{6, "", "uint64", "self_node_id"},
				{7, "", "string", "raft_addr"},
			}},
			{"AddNodeRequest", []field{
				{1, "", "string", "addr"},
				{2, "", "uint64", "node_id"},
			}},
			{"AddNodeResponse", []field{
				{1, "", "bool", "success"},
				{2, "", "uint64", "node_id"},
				{3, "", "string", "message"},
			}},
			{"PromoteNodeRequest", []field{
				{1, "", "uint64", "node_id"},
			}},
			{"PromoteNodeResponse", []field{
				{1, "", "bool", "success"},
				{2, "", "string", "message"},
			}},
			{"RemoveNodeRequest", []field{
				{1, "", "uint64", "node_id"},
			}},
			{"RemoveNodeResponse", []field{
				{1, "", "bool", "success"},
				{2, "", "string", "message"},
			}},
			{"Empty", nil},
			{"ClusterBalanceRequest", nil},
		},
	},
}
