import GRDB

/// The schema, as append-only SQL migrations: never edit one that has shipped; add the next.
///
/// The schema holds the invariants (NOT NULL, UNIQUE, CHECK, foreign keys with cascades), so that no
/// code path, present or future, can write what the data model forbids. Every table is scoped by
/// account; every ID is a UUID in its canonical lower-case text form.
enum Migrations {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("001_initial_schema") { db in
            try db.execute(sql: initialSchema)
        }
        migrator.registerMigration("002_device_token") { db in
            // The token a client or gateway signed in with: deleting or expiring it takes the device's
            // access away (portal spec, "Live changes").
            try db.execute(sql: """
                ALTER TABLE device ADD COLUMN token_id TEXT REFERENCES token(id) ON DELETE SET NULL;
                CREATE INDEX device_token ON device(token_id);
                CREATE INDEX authorization_policy ON authorization(policy_id);
                """)
        }
        return migrator
    }

    private static let initialSchema = """
        CREATE TABLE account (
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            slug TEXT NOT NULL UNIQUE CHECK (slug GLOB '[a-z0-9]*' AND slug NOT GLOB '*[^a-z0-9-]*' AND length(slug) BETWEEN 1 AND 63),
            tunnel_ipv4_range TEXT NOT NULL DEFAULT '100.64.0.0/11',
            tunnel_ipv6_range TEXT NOT NULL DEFAULT 'fd00:6761:7465::/48',
            created_at TEXT NOT NULL
        );

        CREATE TABLE actor (
            id TEXT PRIMARY KEY NOT NULL,
            account_id TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
            type TEXT NOT NULL CHECK (type IN ('user', 'admin', 'service_account')),
            name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            email TEXT,
            disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
            created_at TEXT NOT NULL,
            UNIQUE (account_id, email),
            -- people sign in with an email; machines do not have one
            CHECK ((type = 'service_account') = (email IS NULL))
        );

        -- "group" is an SQL keyword.
        CREATE TABLE actor_group (
            id TEXT PRIMARY KEY NOT NULL,
            account_id TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
            name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            created_at TEXT NOT NULL,
            UNIQUE (account_id, name)
        );

        CREATE TABLE membership (
            account_id TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
            actor_id TEXT NOT NULL REFERENCES actor(id) ON DELETE CASCADE,
            group_id TEXT NOT NULL REFERENCES actor_group(id) ON DELETE CASCADE,
            PRIMARY KEY (actor_id, group_id)
        );
        CREATE INDEX membership_group ON membership(group_id);

        CREATE TABLE site (
            id TEXT PRIMARY KEY NOT NULL,
            account_id TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
            name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            created_at TEXT NOT NULL,
            UNIQUE (account_id, name)
        );

        CREATE TABLE resource (
            id TEXT PRIMARY KEY NOT NULL,
            account_id TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
            -- deleting a site deletes its resources
            site_id TEXT NOT NULL REFERENCES site(id) ON DELETE CASCADE,
            name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            type TEXT NOT NULL CHECK (type IN ('cidr', 'ip', 'dns')),
            address TEXT NOT NULL CHECK (length(address) BETWEEN 1 AND 253),
            address_description TEXT,
            -- JSON array of filters; empty means all traffic
            filters TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(filters) AND json_type(filters) = 'array'),
            ip_stack TEXT CHECK (ip_stack IN ('ipv4', 'ipv6', 'dual')),
            created_at TEXT NOT NULL,
            UNIQUE (account_id, name),
            CHECK ((type = 'dns') = (ip_stack IS NOT NULL))
        );
        CREATE INDEX resource_site ON resource(site_id);

        CREATE TABLE policy (
            id TEXT PRIMARY KEY NOT NULL,
            account_id TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
            group_id TEXT NOT NULL REFERENCES actor_group(id) ON DELETE CASCADE,
            resource_id TEXT NOT NULL REFERENCES resource(id) ON DELETE CASCADE,
            description TEXT,
            -- JSON array of conditions; all must hold
            conditions TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(conditions) AND json_type(conditions) = 'array'),
            disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
            created_at TEXT NOT NULL,
            UNIQUE (group_id, resource_id)
        );
        CREATE INDEX policy_resource ON policy(resource_id);

        CREATE TABLE token (
            id TEXT PRIMARY KEY NOT NULL,
            account_id TEXT REFERENCES account(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('admin_api', 'client', 'gateway', 'relay')),
            -- SHA-256 of the secret, hex: the secret itself is shown once and never stored
            secret_hash TEXT NOT NULL UNIQUE CHECK (length(secret_hash) = 64),
            expires_at TEXT,
            actor_id TEXT REFERENCES actor(id) ON DELETE CASCADE,
            site_id TEXT REFERENCES site(id) ON DELETE CASCADE,
            last_used_at TEXT,
            last_used_address TEXT,
            created_at TEXT NOT NULL,
            -- admin and client tokens belong to an actor, gateway tokens to a site, relay tokens to neither
            CHECK (CASE kind
                WHEN 'admin_api' THEN actor_id IS NOT NULL AND site_id IS NULL
                WHEN 'client' THEN actor_id IS NOT NULL AND site_id IS NULL
                WHEN 'gateway' THEN site_id IS NOT NULL AND actor_id IS NULL
                ELSE actor_id IS NULL AND site_id IS NULL END)
        );

        CREATE TABLE device (
            id TEXT PRIMARY KEY NOT NULL,
            account_id TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('client', 'gateway')),
            external_id TEXT NOT NULL,
            name TEXT NOT NULL,
            public_key TEXT NOT NULL,
            tunnel_ipv4 TEXT NOT NULL,
            tunnel_ipv6 TEXT NOT NULL,
            actor_id TEXT REFERENCES actor(id) ON DELETE CASCADE,
            site_id TEXT REFERENCES site(id) ON DELETE CASCADE,
            version TEXT,
            last_seen_at TEXT,
            last_seen_address TEXT,
            verified INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
            created_at TEXT NOT NULL,
            UNIQUE (account_id, kind, external_id),
            UNIQUE (account_id, tunnel_ipv4),
            UNIQUE (account_id, tunnel_ipv6),
            CHECK ((kind = 'client') = (actor_id IS NOT NULL AND site_id IS NULL)),
            CHECK ((kind = 'gateway') = (site_id IS NOT NULL AND actor_id IS NULL))
        );

        CREATE TABLE authorization (
            id TEXT PRIMARY KEY NOT NULL,
            account_id TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
            client_id TEXT NOT NULL REFERENCES device(id) ON DELETE CASCADE,
            gateway_id TEXT NOT NULL REFERENCES device(id) ON DELETE CASCADE,
            resource_id TEXT NOT NULL REFERENCES resource(id) ON DELETE CASCADE,
            policy_id TEXT NOT NULL REFERENCES policy(id) ON DELETE CASCADE,
            expires_at TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX authorization_client ON authorization(client_id);
        CREATE INDEX authorization_gateway ON authorization(gateway_id);

        CREATE TABLE audit_event (
            id TEXT PRIMARY KEY NOT NULL,
            account_id TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
            -- who: kept as text so that the trail outlives the actor
            actor_id TEXT,
            actor_name TEXT,
            action TEXT NOT NULL,
            subject_type TEXT NOT NULL,
            subject_id TEXT NOT NULL,
            before TEXT CHECK (before IS NULL OR json_valid(before)),
            after TEXT CHECK (after IS NULL OR json_valid(after)),
            at TEXT NOT NULL
        );
        CREATE INDEX audit_event_account_at ON audit_event(account_id, at);
        """
}
