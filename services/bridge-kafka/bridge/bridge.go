package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkaexport"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkaimport"
)

// Run runs every import and export of cfg until ctx ends (each drains gracefully) or one of them
// fails; a failure stops the others (gracefully) and is returned. opts (logger, telemetry server)
// are shared by all of them: one /metrics, /healthz and /readyz for the process, each mapping
// labelled with its own connector name.
func Run(ctx context.Context, cfg *Config, opts ...runtime.Option) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	fail := func(what string, err error) {
		if err == nil {
			return
		}
		mu.Lock()
		errs = append(errs, fmt.Errorf("%s: %w", what, err))
		mu.Unlock()
		stop(err)
	}
	for _, r := range cfg.Import.Mappings.Routes {
		sc := cfg.sourceConfig(r)
		kc := cfg.Kafka.ConfigMap(sc.ConnectorName)
		cfg.Import.Properties.Apply(kc)
		res := runtime.NewResources(&sc.Common, opts...)
		io := kafkaimport.Options{
			Kafka: kc, Topic: r.Kafka, Group: cfg.Import.GroupID, Start: string(cfg.Import.Start),
			Destination: r.Danube, BatchSize: cfg.Import.BatchSize, Mirror: cfg.Import.Mirror,
		}
		if io.Mirror {
			io.CreateTopics = kafkaimport.DanubeTopics{
				ServiceURL: sc.DanubeServiceURL, Client: sc.ClientOptions(), Producer: sc.ConnectorName, Base: r.Danube,
				Retry: sc.Retry(), FailAfter: sc.DanubeFailAfter.D(), Log: res.Logger,
			}.Create
		}
		src, err := kafkaimport.New(io, res)
		if err != nil {
			stop(err)
			wg.Wait()
			return err
		}
		wg.Go(func() { fail("import "+r.Kafka+" → "+r.Danube, runtime.RunSource(ctx, sc, src, opts...)) })
	}
	for _, r := range cfg.Export.Mappings.Routes {
		sc := cfg.sinkConfig(r)
		kc := cfg.Kafka.ConfigMap(sc.ConnectorName)
		cfg.Export.Properties.Apply(kc)
		sink, err := kafkaexport.New(kafkaexport.Options{
			Kafka: kc, Topic: r.Kafka, Origin: r.Danube, DeliveryTimeout: cfg.Export.DeliveryTimeout.D(),
			Batch: cfg.Export.BatchSize > 1,
		}, runtime.NewResources(&sc.Common, opts...))
		if err != nil {
			stop(err)
			wg.Wait()
			return err
		}
		wg.Go(func() { fail("export "+r.Danube+" → "+r.Kafka, runtime.RunSink(ctx, sc, sink, opts...)) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
