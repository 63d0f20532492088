#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The vocabulary of `AppTransitions`: the events it takes, the actions and reports it returns,
/// the failures it classifies and the context it decides in.
extension AppTransitions {
    /// How a secret came to us; decides the log line and whether a settle check follows.
    public enum SecretOrigin: String, Sendable, Equatable {
        /// Our refresh answered.
        case rotated
        /// Our refresh's answer was lost, and a later read showed it had happened.
        case reconciled
        /// The first secret of an app, read without rotating.
        case fetched
        /// GenAuth holds a secret we did not write (rotated out of band, or by a follow's leader).
        case changedUpstream = "changed upstream"
    }

    /// Why GenAuth's current secret was read.
    public enum ReadPurpose: String, Sendable, Equatable {
        case reconcile, verify, fetch
    }

    /// A failed step, already free of secrets.
    public struct Failure: Sendable, Equatable {
        public enum Kind: Sendable, Equatable {
            /// Retry with the exponential backoff.
            case transient
            /// Will not heal soon (bad credentials, unknown app): wait `retry.max`.
            case permanent
            /// A refresh whose answer was lost; GenAuth may still apply it.
            case outcomeUnknown
            /// GenAuth refused to let us read the secret (403): the truth cannot be learnt.
            case forbidden
            /// Our own side failed: an output, a hook, the state directory.
            case local
            /// A fleet's fence refused the refresh: this host does not lead (any more), so
            /// nothing was sent and the rotation is the leader's (Architecture, Fleet). Not a
            /// failure of the app: no backoff, no failure count.
            case notLeader
        }

        public var kind: Kind
        public var message: String
        /// A server's Retry-After, honoured by the backoff wherever it is given.
        public var retryAfter: Duration?
        /// Structured fields for the log (errno, http_status, request_id, target_path...).
        public var fields: [String: String]

        public init(_ kind: Kind, _ message: String, retryAfter: Duration? = nil, fields: [String: String] = [:]) {
            self.kind = kind
            self.message = message
            self.retryAfter = retryAfter
            self.fields = fields
        }
    }

    public enum Event: Sendable, Equatable {
        /// The planner chose a refresh; its intent must be durable before it is sent.
        case refreshStarting
        /// refresh-application-secret answered with a secret of this fingerprint.
        case refreshAnswered(fingerprint: String)
        case refreshFailed(Failure)
        /// get-application-secret answered.
        case secretRead(fingerprint: String, purpose: ReadPurpose)
        case readFailed(Failure, purpose: ReadPurpose)
        /// Every output now holds `version` (obtained at `obtainedAt`).
        case outputsWritten(version: Int, obtainedAt: Date, fingerprint: String, origin: SecretOrigin)
        case outputsFailed(Failure)
        /// An inspection found outputs that differ from the held secret. `contentChanged`: a
        /// repair would replace what an output holds (its content, or a missing file);
        /// `recordConfirmed`: GenAuth confirmed the held record since this process started
        /// (it answered that secret, or a read found it current). A restored or stale record
        /// is not, and its secret may be dead while the output holds the live one.
        case outputsDrifted(contentChanged: Bool, recordConfirmed: Bool)
        /// Outputs that had drifted were rewritten from the held secret.
        case driftRepaired(causes: [String], contentChanged: Bool)
        case hookFinished(version: Int, succeeded: Bool, detail: String)
        /// The consumer units were told of `version` over D-Bus; `outcomes` is what systemd
        /// showed for each (`ConsumerPickup`), in the config's order.
        case consumersNotified(version: Int, outcomes: [ConsumerOutcome])
        /// A record could not be made durable; the step fails and nothing new is adopted.
        case journalFailed(Failure)
        /// The held secret is newer than the outputs (`RotationPlanner.Step.writeOutputs`) and is
        /// about to replace what they hold. `recordConfirmed`: GenAuth answered or confirmed it
        /// since this process started; `obtainedAfterIntent`: it was received after the
        /// refresh intent the state records was started, i.e. it is that refresh's answer.
        case heldSecretDue(recordConfirmed: Bool, obtainedAfterIntent: Bool)
        /// GenAuth's current secret, read to confirm a held secret before it is written;
        /// `matchesHeld`: it is the held secret.
        case heldSecretRead(matchesHeld: Bool)
        /// GenAuth answered a call again after transient failures (any app's call): an app
        /// waiting on a transient backoff may retry at `retryAt` (its slot in the request budget).
        case apiRecovered(retryAt: Date)
        /// etcd accepted the fleet's rotation notice for `version` (or a newer notice already
        /// covered it): the announcement is no longer owed.
        case announced(version: Int)
    }

    public enum Action: Sendable, Equatable {
        /// Send refresh-application-secret (its intent is durable by now).
        case sendRefresh
        /// Keep the secret just received as `version` (durable, 0600), then write every output.
        case adoptSecret(version: Int, origin: SecretOrigin)
        /// GenAuth confirmed the secret the outputs hold: keep it as the held secret if it is not yet.
        case keepConfirmedSecret
        case runHook(version: Int)
        /// Tell every consumer unit of `version` (reload or restart over D-Bus), then check
        /// that each picked it up; answered by `consumersNotified`.
        case notifyConsumers(version: Int)
        /// Rewrite the drifted outputs from the held secret (no API call).
        case repairOutputs
        /// Write the held secret (newer than the outputs) to every output (no API call).
        case writeHeldSecret
        /// Read GenAuth's current secret to confirm the held secret before it is written;
        /// answered by `heldSecretRead` (or `readFailed`, purpose `.verify`).
        case confirmHeldSecret
        /// Read GenAuth's current secret (purpose `.verify`) before any output content is
        /// replaced from a record GenAuth has not confirmed: its answer wins (invariant 10).
        case confirmRecord
        /// Tell the fleet that `version` is on every output (a rotation notice in etcd), retried
        /// with the one backoff until etcd accepts it; answered by `announced`.
        case announce(version: Int)
        /// Something for the log.
        case report(Report)
    }

    /// This host's part in a fleet for one app, as far as notices go.
    public enum FleetRole: Sendable, Equatable {
        /// No `[cluster]`, or a `follow` app: nobody is told of what this host writes.
        case none
        /// A `rotate` app while this host leads the election.
        case leader
        /// A `rotate` app while another host leads (or nobody does).
        case notLeading
    }

    /// What an operator reads in the log; the engine turns each into one entry.
    public enum Report: Sendable, Equatable {
        case refreshOutcomeUnknown(Failure, reconcileAt: Date)
        case oldSecretStillCurrent(confirmAt: Date)
        case refreshNotApplied
        /// The fence refused a refresh (`Failure.Kind.notLeader`): nothing was sent.
        case refreshNotSent(Failure)
        case forbiddenRead(Failure)
        case secretWritten(version: Int, origin: SecretOrigin)
        case changedUpstream(purpose: ReadPurpose)
        case confirmed(purpose: ReadPurpose)
        case repaired(causes: [String])
        /// Drift that would replace content was found, and the held record is not confirmed:
        /// GenAuth is read first, the outputs are left as they are until it answers.
        case repairAwaitsConfirmation
        /// A held secret newer than the outputs is neither confirmed since start-up nor the
        /// answer to our recorded refresh: GenAuth is read before it is written.
        case heldWriteAwaitsConfirmation
        /// GenAuth holds another secret than the held one: the held secret is dead and is
        /// never written; GenAuth's secret is adopted instead.
        case heldSecretSuperseded
        /// A transient backoff was cut short because GenAuth answers again.
        case retryPulledForward(to: Date)
        case hookDone(version: Int, detail: String)
        /// Consumers that picked up `version` (or were not running); failures come as `failed`.
        case consumersSettled(version: Int, outcomes: [ConsumerOutcome])
        case failed(Failure, attempt: Int, retryIn: Duration, permanent: Bool)
    }

    /// Everything a transition may depend on besides the state: the clock reading, the policy,
    /// and a random draw for the backoff's jitter (so a transition is a function of its inputs).
    public struct Context: Sendable {
        public var now: Date
        public var policy: EnginePolicy
        public var hasHook: Bool
        /// The app names consumer units (`consumers`): a new secret is announced to them.
        public var hasConsumers: Bool
        public var draw: UInt64
        public var fleet: FleetRole

        public init(now: Date, policy: EnginePolicy, hasHook: Bool, hasConsumers: Bool = false, draw: UInt64, fleet: FleetRole = .none) {
            self.now = now
            self.policy = policy
            self.hasHook = hasHook
            self.hasConsumers = hasConsumers
            self.draw = draw
            self.fleet = fleet
        }
    }

    public struct Transition: Sendable, Equatable {
        public var state: AppState
        public var actions: [Action]
    }
}
