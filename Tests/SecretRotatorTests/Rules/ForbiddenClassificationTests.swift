import Testing

@testable import SecretRotator

/// The one 403 rule: the engine's failure kind and `check-config`'s verdict both ask it.
@Suite struct ForbiddenClassificationTests {
    typealias Row = (httpStatus: Int?, apiStatusCode: Int?, classification: GenAuthError.Classification, forbidden: Bool, kind: AppTransitions.Failure.Kind)

    static let rows: [Row] = [
        (nil, 403, .permanent, true, .forbidden),
        (403, nil, .permanent, true, .forbidden),
        (200, 403, .permanent, true, .forbidden),
        (403, nil, .authentication, true, .forbidden),
        (nil, 404, .permanent, false, .permanent),
        (401, nil, .authentication, false, .permanent),
        (nil, nil, .permanent, false, .permanent),
        (503, nil, .transient, false, .transient),
        (nil, 403, .transient, true, .transient),
        (500, nil, .outcomeUnknown, false, .outcomeUnknown),
        (nil, 403, .outcomeUnknown, true, .outcomeUnknown),
    ]

    @Test func everyRowMatches() {
        for row in Self.rows {
            let error = GenAuthError(
                classification: row.classification, reason: row.apiStatusCode == nil ? .httpStatus : .apiError,
                operation: "get-application-secret", httpStatus: row.httpStatus, apiStatusCode: row.apiStatusCode)
            #expect(error.isForbidden == row.forbidden, "\(row)")
            #expect(error.failureKind == row.kind, "\(row)")
        }
    }
}
