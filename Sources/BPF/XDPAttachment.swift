import CBPF
import Glibc
import Synchronization

/// How an XDP program runs on an interface.
package enum XDPMode: String, Sendable, CaseIterable {
    /// In the driver, before the kernel allocates a socket buffer (veth and most server NICs).
    case native
    /// After the socket buffer exists: works on every interface, slower.
    case generic

    var flags: UInt32 {
        switch self {
        case .native: UInt32(XDP_FLAGS_DRV_MODE)
        case .generic: UInt32(XDP_FLAGS_SKB_MODE)
        }
    }
}

/// An XDP program attached to an interface through a BPF link: the attachment lasts as long as the link
/// is open, so a process that dies leaves no program behind. `detach()` ends it; so does releasing the
/// last reference.
package final class XDPAttachment: Sendable {
    package let program: BPFProgram
    package let interface: String
    package let interfaceIndex: Int32
    package let mode: XDPMode
    private let link: Mutex<Int32?>

    private init(program: BPFProgram, interface: String, interfaceIndex: Int32, mode: XDPMode, link: Int32) {
        self.program = program
        self.interface = interface
        self.interfaceIndex = interfaceIndex
        self.mode = mode
        self.link = Mutex(link)
    }

    /// Attaches `program` to `interface` (looked up in the calling thread's network namespace). Fails
    /// if another XDP program is attached there already.
    package static func attach(
        _ program: BPFProgram, to interface: String, mode: XDPMode
    ) throws(BPFError) -> XDPAttachment {
        let index = try NetworkInterface.index(named: interface)
        var options = bpf_link_create_opts()
        options.sz = libbpfOptionsSize(bpf_link_create_opts.self, through: \.flags)
        options.flags = mode.flags
        let (fd, log) = LibBPFLog.capturing {
            bpf_link_create(program.fileDescriptor, index, BPF_XDP, &options)
        }
        if fd < 0 {
            throw LibBPFLog.error(
                "attaching XDP program \"\(program.name)\" to \(interface) in \(mode.rawValue) mode", code: -fd, log: log)
        }
        return XDPAttachment(program: program, interface: interface, interfaceIndex: index, mode: mode, link: fd)
    }

    /// Whether the program is still attached by this object.
    package var isAttached: Bool { link.withLock { $0 != nil } }

    /// Detaches the program. Calling it again does nothing.
    package func detach() throws(BPFError) {
        guard let fd = link.withLock({ link -> Int32? in defer { link = nil }; return link }) else { return }
        let code = bpf_link_detach(fd)
        close(fd)
        // ENOLINK: the interface went away and took the attachment with it.
        if code < 0 && code != -ENOLINK {
            throw LibBPFLog.error("detaching XDP program \"\(program.name)\" from \(interface)", code: -code)
        }
    }

    deinit {
        if let fd = link.withLock({ $0 }) { close(fd) }
    }
}
