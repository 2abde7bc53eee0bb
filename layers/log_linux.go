package layers

import (
	"context"
	"io"
	"log/slog"

	clog "github.com/containerd/log"
	"github.com/sirupsen/logrus"
)

// withArchiveLog makes containerd's archive package, which logs through
// logrus (to stderr by default), log to log instead.
func withArchiveLog(ctx context.Context, log *slog.Logger) context.Context {
	l := logrus.New()
	l.Out = io.Discard
	l.Level = logrus.DebugLevel
	l.AddHook(slogHook{discardIfNil(log)})
	return clog.WithLogger(ctx, logrus.NewEntry(l))
}

type slogHook struct{ log *slog.Logger }

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h slogHook) Fire(e *logrus.Entry) error {
	level := slog.LevelDebug
	if e.Level <= logrus.WarnLevel {
		level = slog.LevelWarn
	}
	attrs := make([]any, 0, 2*len(e.Data))
	for k, v := range e.Data {
		attrs = append(attrs, k, v)
	}
	h.log.Log(e.Context, level, e.Message, attrs...) // slog takes a nil context as Background
	return nil
}
