import ServiceLifecycle

/// Runs the evaluator's expiries (`PolicyEvaluator.runExpiries()`) for the life of the portal: access
/// ends when a token, an authorisation or a time window runs out.
package struct ExpiryService: Service {
    let evaluator: PolicyEvaluator

    package init(evaluator: PolicyEvaluator) {
        self.evaluator = evaluator
    }

    package func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await evaluator.runExpiries() }
        } catch is CancellationError {
            // Shutting down.
        }
    }
}
