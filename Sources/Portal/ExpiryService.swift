import Foundation
package import Logging
import ServiceLifecycle

/// Runs the evaluator's expiries (`PolicyEvaluator.runExpiries()`) for the life of the portal: access
/// ends when a token, an authorisation or a time window runs out.
package struct ExpiryService: Service {
    let evaluator: PolicyEvaluator
    let logger: Logger

    package init(evaluator: PolicyEvaluator, logger: Logger = Logger(label: "gatehouse.portal.expiry")) {
        self.evaluator = evaluator
        self.logger = logger
    }

    package func run() async throws {
        let start = Date()
        do {
            try await cancelWhenGracefulShutdown {
                try await evaluator.runExpiries { [logger] accounts in
                    logger.info("views loaded", metadata: [
                        "accounts": "\(accounts)", "milliseconds": "\(Int(Date().timeIntervalSince(start) * 1000))",
                    ])
                }
            }
        } catch is CancellationError {
            // Shutting down.
        }
    }
}
