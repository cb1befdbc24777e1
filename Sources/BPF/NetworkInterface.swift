import Glibc

/// Network interfaces by name, in the calling thread's network namespace.
package enum NetworkInterface {
    /// The kernel's index for the interface called `name`.
    package static func index(named name: String) throws(BPFError) -> Int32 {
        let index = if_nametoindex(name)
        guard index != 0 else { throw .interfaceNotFound(name) }
        return Int32(bitPattern: index)
    }
}
