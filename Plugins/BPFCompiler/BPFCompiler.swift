import Foundation
import PackagePlugin

/// Compiles every `bpf/*.bpf.c` of the package with the toolchain's clang (`-target bpf -O2 -g`) and
/// turns each object into a Swift source file that embeds it, so that `swift build` alone produces a
/// binary that carries its BPF programs: no pre-build step and no committed object files.
@main
struct BPFCompiler: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let bpfDirectory = context.package.directoryURL.appending(path: "bpf")
        let includeDirectory = bpfDirectory.appending(path: "include")
        let programs = try files(in: bpfDirectory, recursive: false) { $0.hasSuffix(".bpf.c") }
        // Every program is rebuilt when any shared header changes.
        let headers = try files(in: includeDirectory, recursive: true) { $0.hasSuffix(".h") }
        let clang = try clangURL(context: context)
        let embed = try context.tool(named: "bpf-embed").url
        let work = context.pluginWorkDirectoryURL

        let flags = [
            "-target", "bpf", "-O2", "-g", "-Wall", "-Werror",
            "-I", includeDirectory.path(percentEncoded: false),
            "-I", "/usr/include/\(multiarchTriple)",
        ]
        var commands: [Command] = programs.map { program in
            let name = String(program.lastPathComponent.dropLast(".bpf.c".count))
            return .buildCommand(
                displayName: "Compiling BPF program \(program.lastPathComponent)",
                executable: embed,
                arguments: [
                    "compile", clang.path(percentEncoded: false), program.path(percentEncoded: false),
                    work.appending(path: "\(name).bpf.o").path(percentEncoded: false),
                    work.appending(path: "EmbeddedBPF+\(name).swift").path(percentEncoded: false),
                ] + flags,
                inputFiles: [program] + headers,
                outputFiles: [work.appending(path: "EmbeddedBPF+\(name).swift")]
            )
        }
        let index = work.appending(path: "EmbeddedBPF+all.swift")
        commands.append(.buildCommand(
            displayName: "Listing embedded BPF objects",
            executable: embed,
            arguments: ["index", index.path(percentEncoded: false)] + programs.map { $0.lastPathComponent },
            inputFiles: [],
            outputFiles: [index]
        ))
        return commands
    }

    /// Debian keeps `asm/types.h` under the multiarch directory, which clang does not search when it
    /// targets BPF.
    private var multiarchTriple: String {
        #if arch(x86_64)
        "x86_64-linux-gnu"
        #elseif arch(arm64)
        "aarch64-linux-gnu"
        #else
        "unknown-linux-gnu"
        #endif
    }

    /// The clang next to the Swift compiler is the one that targets BPF; fall back to PATH.
    private func clangURL(context: PluginContext) throws -> URL {
        if let tool = try? context.tool(named: "clang") {
            return tool.url
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"
        for directory in path.split(separator: ":") {
            let candidate = URL(filePath: String(directory)).appending(path: "clang")
            if FileManager.default.isExecutableFile(atPath: candidate.path(percentEncoded: false)) {
                return candidate
            }
        }
        throw BPFCompilerError.clangNotFound
    }

    private func files(in directory: URL, recursive: Bool, where matches: (String) -> Bool) throws -> [URL] {
        guard FileManager.default.fileExists(atPath: directory.path(percentEncoded: false)) else { return [] }
        var found: [URL] = []
        if recursive {
            let enumerator = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil)
            while let url = enumerator?.nextObject() as? URL {
                if matches(url.lastPathComponent) { found.append(url) }
            }
        } else {
            for url in try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            where matches(url.lastPathComponent) {
                found.append(url)
            }
        }
        return found.sorted { $0.path < $1.path }
    }
}

enum BPFCompilerError: Error, CustomStringConvertible {
    /// No clang that can target BPF was found.
    case clangNotFound

    var description: String {
        switch self {
        case .clangNotFound:
            "BPFCompiler: no clang found next to the Swift toolchain or on PATH; the Swift toolchain's clang compiles bpf/*.bpf.c"
        }
    }
}
