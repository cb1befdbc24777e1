import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Manage a portal from the shell, through its admin API.",
        discussion: """
            The portal URL and admin token come from --portal-url and --token, or GATEHOUSE_PORTAL_URL and \
            GATEHOUSE_TOKEN. Names are accepted wherever IDs are. Output is a table; --json prints the API's JSON.
            """,
        subcommands: [SiteCommand.self]
    )
}

/// What every admin command takes.
struct AdminOptions: ParsableArguments {
    @Option(help: "Portal URL, e.g. http://127.0.0.1:8080. [GATEHOUSE_PORTAL_URL]") var portalURL: String?
    @Option(help: "Admin API token. [GATEHOUSE_TOKEN]") var token: String?
    @Flag(help: "Print JSON instead of a table.") var json = false

    func client() throws -> AdminClient {
        let environment = Environment()
        guard let url = environment.string(portalURL, "GATEHOUSE_PORTAL_URL"), let base = URL(string: url), base.scheme != nil else {
            throw ValidationError("the portal URL is required: --portal-url or GATEHOUSE_PORTAL_URL")
        }
        guard let token = environment.string(token, "GATEHOUSE_TOKEN") else {
            throw ValidationError("an admin token is required: --token or GATEHOUSE_TOKEN")
        }
        return AdminClient(base: base, token: token)
    }
}

/// The admin API over HTTP. A failed call becomes an error with the API's message.
struct AdminClient {
    let base: URL
    let token: String

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    func call(_ method: String, _ path: String, body: [String: Any]? = nil) async throws -> (status: Int, json: Any?) {
        guard let url = URL(string: path, relativeTo: base) else { throw Failure(description: "bad path \(path)") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        if let body {
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response): (Data, URLResponse)
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw Failure(description: "cannot reach the portal at \(base.absoluteString): \(error.localizedDescription)")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let json = data.isEmpty ? nil : try? JSONSerialization.jsonObject(with: data)
        if !(200..<300).contains(status) {
            let error = (json as? [String: Any])?["error"] as? [String: Any]
            throw Failure(description: (error?["message"] as? String) ?? "the portal answered HTTP \(status)")
        }
        return (status, json)
    }

    /// Every item of a paginated list.
    func list(_ path: String) async throws -> [[String: Any]] {
        var items: [[String: Any]] = []
        var cursor: String?
        repeat {
            let query = cursor.map { "?limit=500&cursor=\($0.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? $0)" } ?? "?limit=500"
            let page = try await call("GET", path + query).json as? [String: Any]
            items += page?["data"] as? [[String: Any]] ?? []
            cursor = page?["next_cursor"] as? String
        } while cursor != nil
        return items
    }
}

/// Prints rows under a header, columns padded to their widest cell.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    for row in [header] + rows {
        print(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  "))
    }
}

func printJSON(_ value: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

struct SiteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "site", abstract: "Sites: places where gateways run.",
        subcommands: [List.self, Create.self, Delete.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List sites.")
        @OptionGroup var options: AdminOptions

        func run() async throws {
            let sites = try await options.client().list("/api/v1/sites")
            if options.json { return try printJSON(sites) }
            printTable(["ID", "NAME", "CREATED"], sites.map { [$0["id"] as? String ?? "", $0["name"] as? String ?? "", $0["created_at"] as? String ?? ""] })
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a site.")
        @OptionGroup var options: AdminOptions
        @Option(help: "The site's name, unique in the account.") var name: String

        func run() async throws {
            let site = try await options.client().call("POST", "/api/v1/sites", body: ["name": name]).json as? [String: Any] ?? [:]
            if options.json { return try printJSON(site) }
            printTable(["ID", "NAME"], [[site["id"] as? String ?? "", site["name"] as? String ?? ""]])
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a site and its resources.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The site's name or ID.") var site: String

        func run() async throws {
            let client = try options.client()
            var id = site
            if UUID(uuidString: site) == nil {
                guard let match = try await client.list("/api/v1/sites").first(where: { $0["name"] as? String == site }),
                      let found = match["id"] as? String else {
                    throw AdminClient.Failure(description: "site \"\(site)\" not found")
                }
                id = found
            }
            _ = try await client.call("DELETE", "/api/v1/sites/\(id)")
            if !options.json { print("deleted site \(site)") }
        }
    }
}
