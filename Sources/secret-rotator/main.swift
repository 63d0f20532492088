import SecretRotator
print(SecretRotatorVersion.current)
