// Placeholder: the mock GenAuth V3 API lands with the GenAuth client issue.
public enum GenAuthMockPlaceholder {}
