from paymesh.entrypoints.cli import main

main()
