import GenAuthMock
print("genauth-mock: not implemented yet")
