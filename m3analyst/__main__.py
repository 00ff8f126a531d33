from m3analyst.cli import main

main()
