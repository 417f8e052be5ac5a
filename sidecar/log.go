package sidecar

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newLogger builds the process logger: JSON (or console) lines on stderr,
// ISO-8601 times, no sampling (a denial must never be dropped).
func newLogger(level zapcore.Level, format string) (*zap.Logger, error) {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	if format == "console" {
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
	}
	cfg := zap.Config{
		Level:            zap.NewAtomicLevelAt(level),
		Encoding:         format,
		EncoderConfig:    enc,
		OutputPaths:      []string{"stderr"},
		ErrorOutputPaths: []string{"stderr"},
	}
	l, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("building the logger: %w", err)
	}
	return l, nil
}
