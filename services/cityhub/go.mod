module github.com/cityhub/cityhub/services/cityhub

go 1.26.0

replace (
	github.com/cityhub/cityhub/proto => ../../proto
	github.com/cityhub/cityhub/services/platform => ../platform
)

replace (
	github.com/cityhub/cityhub/frontend-stub => ../../frontend-stub
	github.com/cityhub/cityhub/services/dispatch => ../dispatch
	github.com/cityhub/cityhub/services/intake => ../intake
	github.com/cityhub/cityhub/services/live => ../live
	github.com/cityhub/cityhub/services/notify => ../notify
	github.com/cityhub/cityhub/services/ruler => ../ruler
)

require (
	github.com/alicebob/miniredis/v2 v2.40.0
	github.com/chromedp/chromedp v0.23.0
	github.com/cityhub/cityhub/frontend-stub v0.0.0
	github.com/cityhub/cityhub/proto v0.0.0
	github.com/cityhub/cityhub/services/dispatch v0.0.0
	github.com/cityhub/cityhub/services/intake v0.0.0
	github.com/cityhub/cityhub/services/live v0.0.0
	github.com/cityhub/cityhub/services/notify v0.0.0
	github.com/cityhub/cityhub/services/platform v0.0.0
	github.com/cityhub/cityhub/services/ruler v0.0.0
	github.com/gorilla/websocket v1.5.3
	github.com/prometheus/client_golang v1.25.0
	github.com/prometheus/client_model v0.6.3
	github.com/prometheus/common v0.72.0
	github.com/redis/go-redis/v9 v9.23.0
	github.com/segmentio/kafka-go v0.4.51
	github.com/twmb/franz-go/pkg/kfake v0.0.0-20260918054303-01f206a7e32c
	go.uber.org/goleak v1.3.0
	golang.org/x/sync v0.25.0
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/chromedp/cdproto v0.159.0 // indirect
	github.com/eclipse/paho.golang v0.23.0 // indirect
	github.com/expr-lang/expr v1.17.8 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/mochi-mqtt/server/v2 v2.7.9 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/oklog/ulid/v2 v2.1.2 // indirect
	github.com/pierrec/lz4/v4 v4.1.33 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	github.com/rs/xid v1.4.0 // indirect
	github.com/twmb/franz-go v1.22.2 // indirect
	github.com/twmb/franz-go/pkg/kmsg v1.15.0 // indirect
	github.com/yuin/gopher-lua v1.1.1 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/sys v0.48.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
