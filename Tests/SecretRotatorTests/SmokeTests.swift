import Testing
@testable import SecretRotator

@Test func versionIsSet() {
    #expect(!SecretRotatorVersion.current.isEmpty)
}
