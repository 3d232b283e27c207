module github.com/accessledger/accessledger/scripts/querybench

go 1.26
