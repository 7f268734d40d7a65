return "outside the rules folder"
