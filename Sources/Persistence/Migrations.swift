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
        migrator.registerMigration("003_account_keys") { db in
            // Accounts isolated by the schema, not only by the handlers: every reference carries the
            // account, so that no row can point at another account's row (a composite foreign key onto
            // a unique (account_id, id) of its parent), and no row can move to another account. SQLite
            // cannot change a table's foreign keys in place: the child tables are rebuilt the documented
            // way (new table, copy, drop, rename; https://www.sqlite.org/lang_altertable.html section 7),
            // with foreign keys checked once at the end of the migration (GRDB's deferred mode).
            try db.execute(sql: accountKeys)
        }
        migrator.registerMigration("004_authorization_outlives_policy") { db in
            // Deleting a policy no longer deletes its authorisations in the same statement: a policy
            // granting 10,000 flows took 10,000 rows and their indexes with it before anyone could be
            // told. The evaluator counts an authorisation whose policy is gone as revoked, tells its
            // gateway, and then deletes the row (and deletes any such row it finds when it reads an
            // account). An authorisation still names a policy of its own account when it is made
            // (a trigger, since a foreign key would cascade or refuse).
            try db.execute(sql: authorizationOutlivesPolicy)
        }
        migrator.registerMigration("005_authorization_dns_proxy") { db in
            // A flow to a DNS resource carries the name the client resolved and the proxy addresses it
            // gave it (space-separated), so that a gateway's `init` after a reconnect has them too.
            try db.execute(sql: """
                ALTER TABLE authorization ADD COLUMN dns_name TEXT CHECK (dns_name IS NULL OR length(dns_name) BETWEEN 1 AND 253);
                ALTER TABLE authorization ADD COLUMN dns_proxies TEXT CHECK ((dns_name IS NULL) = (dns_proxies IS NULL));
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

    private static let accountKeys = """
        CREATE UNIQUE INDEX actor_account_key ON actor(account_id, id);
        CREATE UNIQUE INDEX actor_group_account_key ON actor_group(account_id, id);
        CREATE UNIQUE INDEX site_account_key ON site(account_id, id);

        CREATE TABLE new_membership (
            account_id TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
            actor_id TEXT NOT NULL,
            group_id TEXT NOT NULL,
            PRIMARY KEY (account_id, group_id, actor_id),
            FOREIGN KEY (account_id, actor_id) REFERENCES actor(account_id, id) ON DELETE CASCADE,
            FOREIGN KEY (account_id, group_id) REFERENCES actor_group(account_id, id) ON DELETE CASCADE
        );
        INSERT INTO new_membership (account_id, actor_id, group_id) SELECT account_id, actor_id, group_id FROM membership;
        DROP TABLE membership;
        ALTER TABLE new_membership RENAME TO membership;
        -- Covering, like the primary key: otherwise the planner prefers the primary key for a lookup by
        -- actor and reads every membership of the account.
        CREATE INDEX membership_actor ON membership(account_id, actor_id, group_id);

        CREATE TABLE new_resource (
            id TEXT PRIMARY KEY NOT NULL,
            account_id TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
            site_id TEXT NOT NULL,
            name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            type TEXT NOT NULL CHECK (type IN ('cidr', 'ip', 'dns')),
            address TEXT NOT NULL CHECK (length(address) BETWEEN 1 AND 253),
            address_description TEXT,
            filters TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(filters) AND json_type(filters) = 'array'),
            ip_stack TEXT CHECK (ip_stack IN ('ipv4', 'ipv6', 'dual')),
            created_at TEXT NOT NULL,
            UNIQUE (account_id, name),
            UNIQUE (account_id, id),
            CHECK ((type = 'dns') = (ip_stack IS NOT NULL)),
            -- deleting a site deletes its resources
            FOREIGN KEY (account_id, site_id) REFERENCES site(account_id, id) ON DELETE CASCADE
        );
        INSERT INTO new_resource SELECT id, account_id, site_id, name, type, address, address_description, filters, ip_stack, created_at
            FROM resource;
        DROP TABLE resource;
        ALTER TABLE new_resource RENAME TO resource;
        CREATE INDEX resource_site ON resource(site_id);

        CREATE TABLE new_policy (
            id TEXT PRIMARY KEY NOT NULL,
            account_id TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
            group_id TEXT NOT NULL,
            resource_id TEXT NOT NULL,
            description TEXT,
            conditions TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(conditions) AND json_type(conditions) = 'array'),
            disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
            created_at TEXT NOT NULL,
            UNIQUE (group_id, resource_id),
            UNIQUE (account_id, id),
            FOREIGN KEY (account_id, group_id) REFERENCES actor_group(account_id, id) ON DELETE CASCADE,
            FOREIGN KEY (account_id, resource_id) REFERENCES resource(account_id, id) ON DELETE CASCADE
        );
        INSERT INTO new_policy SELECT id, account_id, group_id, resource_id, description, conditions, disabled, created_at FROM policy;
        DROP TABLE policy;
        ALTER TABLE new_policy RENAME TO policy;
        CREATE INDEX policy_resource ON policy(resource_id);

        -- Relay tokens belong to no account (account_id NULL): a composite key with a NULL column is not
        -- enforced, which is what they need; every other token is checked.
        CREATE TABLE new_token (
            id TEXT PRIMARY KEY NOT NULL,
            account_id TEXT REFERENCES account(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('admin_api', 'client', 'gateway', 'relay')),
            secret_hash TEXT NOT NULL UNIQUE CHECK (length(secret_hash) = 64),
            expires_at TEXT,
            actor_id TEXT,
            site_id TEXT,
            last_used_at TEXT,
            last_used_address TEXT,
            created_at TEXT NOT NULL,
            CHECK (CASE kind
                WHEN 'admin_api' THEN actor_id IS NOT NULL AND site_id IS NULL
                WHEN 'client' THEN actor_id IS NOT NULL AND site_id IS NULL
                WHEN 'gateway' THEN site_id IS NOT NULL AND actor_id IS NULL
                ELSE actor_id IS NULL AND site_id IS NULL END),
            CHECK (kind = 'relay' OR account_id IS NOT NULL),
            FOREIGN KEY (account_id, actor_id) REFERENCES actor(account_id, id) ON DELETE CASCADE,
            FOREIGN KEY (account_id, site_id) REFERENCES site(account_id, id) ON DELETE CASCADE
        );
        INSERT INTO new_token SELECT id, account_id, kind, secret_hash, expires_at, actor_id, site_id, last_used_at, last_used_address,
            created_at FROM token;
        DROP TABLE token;
        ALTER TABLE new_token RENAME TO token;

        CREATE TABLE new_device (
            id TEXT PRIMARY KEY NOT NULL,
            account_id TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('client', 'gateway')),
            external_id TEXT NOT NULL,
            name TEXT NOT NULL,
            public_key TEXT NOT NULL,
            tunnel_ipv4 TEXT NOT NULL,
            tunnel_ipv6 TEXT NOT NULL,
            actor_id TEXT,
            site_id TEXT,
            version TEXT,
            last_seen_at TEXT,
            last_seen_address TEXT,
            verified INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
            created_at TEXT NOT NULL,
            -- the token it signed in with; deleting the token takes the device's access away. Kept a
            -- one-column key (a composite SET NULL would null account_id too); a trigger keeps it in
            -- the account.
            token_id TEXT REFERENCES token(id) ON DELETE SET NULL,
            UNIQUE (account_id, kind, external_id),
            UNIQUE (account_id, tunnel_ipv4),
            UNIQUE (account_id, tunnel_ipv6),
            UNIQUE (account_id, id),
            CHECK ((kind = 'client') = (actor_id IS NOT NULL AND site_id IS NULL)),
            CHECK ((kind = 'gateway') = (site_id IS NOT NULL AND actor_id IS NULL)),
            FOREIGN KEY (account_id, actor_id) REFERENCES actor(account_id, id) ON DELETE CASCADE,
            FOREIGN KEY (account_id, site_id) REFERENCES site(account_id, id) ON DELETE CASCADE
        );
        INSERT INTO new_device SELECT id, account_id, kind, external_id, name, public_key, tunnel_ipv4, tunnel_ipv6, actor_id, site_id,
            version, last_seen_at, last_seen_address, verified, created_at, token_id FROM device;
        DROP TABLE device;
        ALTER TABLE new_device RENAME TO device;
        CREATE INDEX device_token ON device(token_id);

        CREATE TABLE new_authorization (
            id TEXT PRIMARY KEY NOT NULL,
            account_id TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
            client_id TEXT NOT NULL,
            gateway_id TEXT NOT NULL,
            resource_id TEXT NOT NULL,
            policy_id TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            created_at TEXT NOT NULL,
            FOREIGN KEY (account_id, client_id) REFERENCES device(account_id, id) ON DELETE CASCADE,
            FOREIGN KEY (account_id, gateway_id) REFERENCES device(account_id, id) ON DELETE CASCADE,
            FOREIGN KEY (account_id, resource_id) REFERENCES resource(account_id, id) ON DELETE CASCADE,
            FOREIGN KEY (account_id, policy_id) REFERENCES policy(account_id, id) ON DELETE CASCADE
        );
        INSERT INTO new_authorization SELECT id, account_id, client_id, gateway_id, resource_id, policy_id, expires_at, created_at
            FROM authorization;
        DROP TABLE authorization;
        ALTER TABLE new_authorization RENAME TO authorization;
        CREATE INDEX authorization_client ON authorization(client_id);
        CREATE INDEX authorization_gateway ON authorization(gateway_id);
        CREATE INDEX authorization_policy ON authorization(policy_id);

        CREATE TRIGGER device_token_in_account BEFORE INSERT ON device
            WHEN NEW.token_id IS NOT NULL AND (SELECT account_id FROM token WHERE id = NEW.token_id) IS NOT NEW.account_id
            BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: the token belongs to another account'); END;
        CREATE TRIGGER device_token_stays_in_account BEFORE UPDATE OF token_id ON device
            WHEN NEW.token_id IS NOT NULL AND (SELECT account_id FROM token WHERE id = NEW.token_id) IS NOT NEW.account_id
            BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: the token belongs to another account'); END;
        """ + ["actor", "actor_group", "membership", "site", "resource", "policy", "token", "device", "authorization"].map { table in
            // A row never moves to another account (GRDB writes every column on update: hence the WHEN).
            """
            CREATE TRIGGER \(table)_account_fixed BEFORE UPDATE OF account_id ON \(table)
                WHEN NEW.account_id IS NOT OLD.account_id
                BEGIN SELECT RAISE(ABORT, 'a row cannot move to another account'); END;
            """
        }.joined(separator: "\n")

    private static let authorizationOutlivesPolicy = """
        CREATE TABLE new_authorization (
            id TEXT PRIMARY KEY NOT NULL,
            account_id TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
            client_id TEXT NOT NULL,
            gateway_id TEXT NOT NULL,
            resource_id TEXT NOT NULL,
            policy_id TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            created_at TEXT NOT NULL,
            FOREIGN KEY (account_id, client_id) REFERENCES device(account_id, id) ON DELETE CASCADE,
            FOREIGN KEY (account_id, gateway_id) REFERENCES device(account_id, id) ON DELETE CASCADE,
            FOREIGN KEY (account_id, resource_id) REFERENCES resource(account_id, id) ON DELETE CASCADE
        );
        INSERT INTO new_authorization SELECT id, account_id, client_id, gateway_id, resource_id, policy_id, expires_at, created_at
            FROM authorization;
        DROP TABLE authorization;
        ALTER TABLE new_authorization RENAME TO authorization;
        CREATE INDEX authorization_client ON authorization(client_id);
        CREATE INDEX authorization_gateway ON authorization(gateway_id);
        CREATE INDEX authorization_policy ON authorization(policy_id);
        CREATE TRIGGER authorization_policy_in_account BEFORE INSERT ON authorization
            WHEN (SELECT account_id FROM policy WHERE id = NEW.policy_id) IS NOT NEW.account_id
            BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: the policy is not one of the account''s'); END;
        CREATE TRIGGER authorization_policy_stays BEFORE UPDATE OF policy_id ON authorization
            WHEN NEW.policy_id IS NOT OLD.policy_id AND (SELECT account_id FROM policy WHERE id = NEW.policy_id) IS NOT NEW.account_id
            BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: the policy is not one of the account''s'); END;
        CREATE TRIGGER authorization_account_fixed BEFORE UPDATE OF account_id ON authorization
            WHEN NEW.account_id IS NOT OLD.account_id
            BEGIN SELECT RAISE(ABORT, 'a row cannot move to another account'); END;
        """
}
