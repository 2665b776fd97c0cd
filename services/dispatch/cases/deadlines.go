package cases

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// ResolveSpec returns spec with its deadlines resolved: the durations its
// sla gives count natural time, and the limits it leaves unset come from
// its case class, or when it names none from the class of the event type,
// on that class's clock. It fails on a class the catalog does not know.
// A dispatch by hand and a case opened from an alert resolve alike.
func (s *Service) ResolveSpec(spec *cityhubv1.DispatchSpec, eventType string) (*cityhubv1.DispatchSpec, error) {
	out := proto.CloneOf(spec)
	class := spec.GetCaseClass()
	if class == "" && eventType != "" {
		if et, ok := s.cat.EventType(eventType); ok {
			class = et.Class
		}
	}
	sla := proto.CloneOf(spec.GetSla())
	if sla == nil {
		sla = &cityhubv1.Sla{}
	}
	sla.AcceptWorking, sla.HandleWorking, sla.CaseClass = false, false, ""
	if class != "" {
		l, ok := s.cat.CaseClassLimits(class)
		if !ok {
			return nil, fmt.Errorf("unknown case class %q", class)
		}
		fill := func(d **durationpb.Duration, working *bool, limit time.Duration) {
			if *d == nil && limit > 0 {
				*d, *working = durationpb.New(limit), l.Working
				sla.CaseClass = class
			}
		}
		fill(&sla.Accept, &sla.AcceptWorking, l.Accept)
		fill(&sla.Handle, &sla.HandleWorking, l.Handle)
	}
	out.CaseClass = class
	out.Sla = sla
	if sla.GetAccept() == nil && sla.GetHandle() == nil {
		out.Sla = nil
	}
	return out, nil
}
