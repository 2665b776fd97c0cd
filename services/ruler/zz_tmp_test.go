package ruler_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/segmentio/kafka-go"
)

func BenchmarkZZStats(b *testing.B) {
	k := kafkatest.Start(b)
	rdb := redistest.Start(b)
	w, _ := stream.NewWriter(stream.WriterOptions{Brokers: k.Brokers})
	defer w.Close()
	cat, _ := catalog.Load("../../rules/catalog.yaml")
	evs := stageWorkload(cat, stageEvents)
	msgs := make([]kafka.Message, len(evs))
	for i, ev := range evs {
		msgs[i], _ = stream.Marshal(k.Topics.Events, ev.GetLocation().GetDistrict(), ev)
	}
	for i := 0; i < len(msgs); i += 1000 {
		w.Write(context.Background(), msgs[i:min(i+1000, len(msgs))]...)
	}
	rdb.Client.ConfigResetStat(context.Background())
	d, _ := runRuler(b, k, w, rdb, cat)
	fmt.Println("ruler", d)
	s, _ := rdb.Client.Info(context.Background(), "commandstats").Result()
	fmt.Println(s)
	n, _ := rdb.Client.DBSize(context.Background()).Result()
	fmt.Println("keys", n)
}
