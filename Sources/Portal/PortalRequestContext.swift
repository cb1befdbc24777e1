package import Hummingbird
import NIOCore
import Persistence

/// The portal's request context: Hummingbird's basic one, plus the peer's address (recorded as a
/// token's last-used address).
package struct PortalRequestContext: RequestContext, RemoteAddressRequestContext {
    package var coreContext: CoreRequestContextStorage
    package let remoteAddress: NIOCore.SocketAddress?

    package init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

/// The admin a request is made by, set by `AdminAuthentication`.
enum AdminSession {
    @TaskLocal static var current: ActorRecord?

    static func require() throws -> ActorRecord {
        guard let actor = current else { throw APIError.unauthorized }
        return actor
    }
}
