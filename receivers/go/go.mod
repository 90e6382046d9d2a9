module github.com/vizochok/vizochok-dispatch/receivers/go

go 1.19
