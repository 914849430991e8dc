import ArgumentParser
import FlockCore

// Choices that are types: `--help` lists their values, and a value outside them is a usage error (exit 64)
// before anything runs.

extension OptimizerKind: ExpressibleByArgument {}

extension ScalingKind: ExpressibleByArgument {}
