package import Actors
package import Addresses

/// Data messages waiting to go out together: filled in place (a message sealed straight into its
/// slot), sent in one system call, and as one GSO super-datagram when they share a destination and a
/// size. The WireGuard engines of the gateway and the client fill one each, from their loop's thread.
package final class Outbox {
    private let batch = DatagramBatch(capacity: 64, datagramCapacity: 65_536)
    /// The socket that sends to a destination (by its address family).
    private let socket: (SocketAddress) -> UDPSocket
    /// Datagrams the kernel did not take (its send buffer full).
    package private(set) var refused = 0

    package init(socket: @escaping (SocketAddress) -> UDPSocket) {
        self.socket = socket
    }

    /// Appends a datagram of at most `size` bytes that `write` makes, first sending what is held when
    /// the new one would not go out in the same segmented send (another destination, a bigger size,
    /// or the whole too big). False when `write` made nothing.
    package func queue(to destination: SocketAddress, size: Int, _ write: (UnsafeMutableRawBufferPointer) -> Int?) -> Bool {
        if batch.count > 0 {
            let first = batch.outgoing(0).count
            let last = batch.outgoing(batch.count - 1).count
            if batch.count == batch.capacity || batch.address(0) != destination || size > first || last < first
                || (batch.count + 1) * first > 65_000 {
                flush()
            }
        }
        var made = false
        batch.append(to: destination) { buffer in
            guard let length = write(buffer) else { return 0 }
            made = true
            return length
        }
        if !made { batch.count -= 1 }
        return made
    }

    /// Sends what is held.
    package func flush() {
        guard batch.count > 0 else { return }
        if let destination = batch.address(0) {
            let sent = (try? socket(destination).send(batch)) ?? 0
            refused += batch.count - sent
        }
        batch.removeAll()
    }
}
