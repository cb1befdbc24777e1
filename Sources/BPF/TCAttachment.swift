import CBPF
import Glibc
import Synchronization

/// Which way of an interface a TC program sees.
package enum TCDirection: String, Sendable, CaseIterable {
    case ingress
    case egress

    var attachPoint: bpf_tc_attach_point {
        switch self {
        case .ingress: BPF_TC_INGRESS
        case .egress: BPF_TC_EGRESS
        }
    }
}

/// A TC classifier (direct action) attached to an interface's `clsact` qdisc through netlink.
///
/// Unlike an XDP link, a netlink TC filter outlives the process: call `detach()` on shutdown, from the
/// network namespace it was attached in. Detaching removes the `clsact` qdisc too when this attachment
/// created it.
package final class TCAttachment: Sendable {
    package let program: BPFProgram
    package let interface: String
    package let direction: TCDirection
    private let interfaceIndex: Int32
    private let handle: UInt32
    private let priority: UInt32
    private let createdQdisc: Bool
    private let attached: Mutex<Bool>

    private init(
        program: BPFProgram, interface: String, direction: TCDirection, interfaceIndex: Int32,
        handle: UInt32, priority: UInt32, createdQdisc: Bool
    ) {
        self.program = program
        self.interface = interface
        self.direction = direction
        self.interfaceIndex = interfaceIndex
        self.handle = handle
        self.priority = priority
        self.createdQdisc = createdQdisc
        self.attached = Mutex(true)
    }

    /// Attaches `program` to `direction` of `interface` (in the calling thread's network namespace).
    package static func attach(
        _ program: BPFProgram, to interface: String, direction: TCDirection
    ) throws(BPFError) -> TCAttachment {
        let index = try NetworkInterface.index(named: interface)
        // One clsact qdisc serves both directions.
        var qdisc = Self.makeHook(index: index, direction: .ingress)
        let (created, createLog) = LibBPFLog.capturing { bpf_tc_hook_create(&qdisc) }
        if created < 0 && created != -EEXIST {
            throw LibBPFLog.error("creating the clsact qdisc on \(interface)", code: -created, log: createLog)
        }
        var hook = Self.makeHook(index: index, direction: direction)
        var options = bpf_tc_opts()
        options.sz = libbpfOptionsSize(bpf_tc_opts.self, through: \.priority)
        options.prog_fd = program.fileDescriptor
        let (code, log) = LibBPFLog.capturing { bpf_tc_attach(&hook, &options) }
        if code < 0 {
            if created == 0 { Self.destroyQdisc(index: index) }
            throw LibBPFLog.error(
                "attaching TC program \"\(program.name)\" to \(interface) \(direction.rawValue)", code: -code, log: log)
        }
        return TCAttachment(
            program: program, interface: interface, direction: direction, interfaceIndex: index,
            handle: options.handle, priority: options.priority, createdQdisc: created == 0)
    }

    package var isAttached: Bool { attached.withLock { $0 } }

    /// Removes the filter (and the qdisc this attachment created). Calling it again does nothing.
    package func detach() throws(BPFError) {
        guard attached.withLock({ attached -> Bool in defer { attached = false }; return attached }) else { return }
        var hook = Self.makeHook(index: interfaceIndex, direction: direction)
        var options = bpf_tc_opts()
        options.sz = libbpfOptionsSize(bpf_tc_opts.self, through: \.priority)
        options.handle = handle
        options.priority = priority
        let code = bpf_tc_detach(&hook, &options)
        // ENOENT/ENODEV: the filter or the interface is already gone, which is what detaching wants.
        if code < 0 && code != -ENOENT && code != -ENODEV && code != -EINVAL {
            throw LibBPFLog.error("detaching TC program \"\(program.name)\" from \(interface)", code: -code)
        }
        if createdQdisc { Self.destroyQdisc(index: interfaceIndex) }
    }

    /// Deletes the clsact qdisc (both directions at once is what tells libbpf to delete, not flush).
    private static func destroyQdisc(index: Int32) {
        var hook = makeHook(index: index, direction: .ingress)
        hook.attach_point = bpf_tc_attach_point(rawValue: BPF_TC_INGRESS.rawValue | BPF_TC_EGRESS.rawValue)
        _ = bpf_tc_hook_destroy(&hook)
    }

    private static func makeHook(index: Int32, direction: TCDirection) -> bpf_tc_hook {
        var hook = bpf_tc_hook()
        hook.sz = libbpfOptionsSize(bpf_tc_hook.self, through: \.parent)
        hook.ifindex = index
        hook.attach_point = direction.attachPoint
        return hook
    }
}
